package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"scorekeeper"
	"scorekeeper/syncplan"
)

// MaxIDLength is the longest transaction id accepted
// (scorekeeper.MaxTxIDLength).
const MaxIDLength = scorekeeper.MaxTxIDLength

// Page is one decoded page of the upstream API.
type Page struct {
	// Items are the valid transactions, in upstream's order, each id once.
	Items []scorekeeper.Transaction
	// Quarantined are the items that failed validation, in upstream's
	// order: each a bounded record (an excerpt, the size and the SHA-256
	// of the item), whatever the item's size.
	Quarantined []scorekeeper.Quarantined
	// Duplicates counts items dropped because an earlier item on the same
	// page was the same: a valid one with the same id (the first copy
	// wins, as the database's ON CONFLICT DO NOTHING does across pages),
	// a malformed one with the same SHA-256 (the quarantine's identity).
	// A page's distinct items are Items and Quarantined: a copy that took
	// another item's place is seen whatever the copied item is.
	Duplicates int
	// Entries counts the page's entries as served: valid, malformed and
	// copies alike (each took a position in upstream's listing).
	Entries int
	// Head and Tail are the createdAt of the first and last entries as
	// served, zero when that entry is malformed.
	Head, Tail time.Time
	// HeadTie and TailTie are the ids of the entries the page starts and
	// ends with that share Head's and Tail's instant, in upstream's order
	// (a tie the page boundary may cut). Nil when not known for certain:
	// the tie reaches a malformed entry (whose instant is unknown) or a
	// copy, takes the whole page, or holds more than MaxTie entries.
	HeadTie, TailTie []string
	// Stray reports a stray copy on the page: a copy that is neither
	// right after its original nor right after an entry of its own
	// instant. In a listing sorted by createdAt it may sit where another
	// item should be, one at or after StrayAfter (the createdAt of the
	// last valid item served before it), which this request then served
	// on no page. A copy right after its original is a row listed twice,
	// as a join lists it, or a copy that pushed the page's last item onto
	// the next; one among entries of its own instant, in a tie served in
	// no order, is as likely a row listed twice, and nothing tells them
	// apart. A malformed entry's instant is its createdAt where that can
	// be read; where it cannot, the instant is unknown and a copy of it,
	// or after it, is stray unless right after its original. StrayID is
	// the copy's id (a malformed item's SHA-256), StrayGap how many
	// entries after its original it sits, and StrayUnknown reports that
	// its instant, or the entry's before it, is unknown. Apart reports a
	// copy not right after its original, stray or not.
	syncplan.StrayCopy
	// Meta is upstream's paging information, as sent.
	Meta Meta
}

// MaxTie bounds Page.HeadTie and Page.TailTie: a longer tie is not
// recorded (a page boundary inside it proves nothing).
const MaxTie = 16

// ties returns the ids of the leading entries of entries that share the
// first entry's instant, or nil when that run is not known for certain:
// it reaches a malformed entry or a copy, takes every entry, or is longer
// than MaxTie.
func ties(entries []entry) []string {
	if len(entries) == 0 || entries[0].bad {
		return nil
	}
	at := entries[0].at
	var ids []string
	seen := map[string]bool{}
	for _, e := range entries {
		switch {
		case e.bad || seen[e.id]:
			return nil
		case !e.at.Equal(at):
			return ids
		case len(ids) == MaxTie:
			return nil
		}
		seen[e.id] = true
		ids = append(ids, e.id)
	}
	return nil // the whole page is one tie: where it ends is unknown
}

// entry is what ties needs of one served entry.
type entry struct {
	id  string
	at  time.Time
	bad bool
}

// Meta is the paging information of a page (design §4).
type Meta struct {
	TotalItems   int `json:"totalItems"`
	ItemCount    int `json:"itemCount"`
	ItemsPerPage int `json:"itemsPerPage"`
	TotalPages   int `json:"totalPages"`
	CurrentPage  int `json:"currentPage"`
}

// decodePage decodes a 2xx body. The envelope must be well-formed — without
// it nothing on the page can be trusted — but each item is judged on its own.
func decodePage(body []byte) (*Page, error) {
	if !json.Valid(body) {
		return nil, &MalformedResponseError{Reason: "body is not valid JSON"}
	}
	if k := kind(body); k != "an object" {
		return nil, &MalformedResponseError{Reason: "body is " + k + ", not a JSON object"}
	}
	fields, err := objectFields(body)
	if err != nil {
		return nil, &MalformedResponseError{Reason: "body: " + err.Error()}
	}
	rawItems, ok := fields["items"]
	if !ok || isNull(rawItems) {
		return nil, &MalformedResponseError{Reason: `"items" is missing`}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(rawItems, &items); err != nil {
		return nil, &MalformedResponseError{Reason: `"items" is not an array`}
	}
	meta, err := decodeMeta(fields["meta"])
	if err != nil {
		return nil, &MalformedResponseError{Reason: err.Error()}
	}

	p := &Page{Meta: meta, Items: make([]scorekeeper.Transaction, 0, len(items))}
	seen := make(map[string]int, len(items)) // id: the entry's index
	seenBad := map[string]int{}
	p.Entries = len(items)
	entries := make([]entry, len(items))
	var prev entry // the entry before, its id a malformed item's SHA-256
	var lastValid time.Time
	for i, raw := range items {
		tx, q := decodeItem(raw)
		entries[i] = entry{id: tx.ID, at: tx.CreatedAt, bad: q != nil}
		self, dup, orig := entries[i], false, 0
		if q != nil {
			self.id = q.SHA256
			orig, dup = seenBad[q.SHA256]
		} else {
			orig, dup = seen[tx.ID]
		}
		if dup && self != prev {
			p.Apart = true
		}
		if dup && !p.Stray && self != prev && (self.at.IsZero() || !self.at.Equal(prev.at)) {
			p.Stray, p.StrayAfter, p.StrayID, p.StrayGap = true, lastValid, self.id, i-orig
			p.StrayUnknown = self.at.IsZero() || prev.at.IsZero()
		}
		prev = self
		if q == nil && i == 0 {
			p.Head = tx.CreatedAt
		}
		if q == nil && i == len(items)-1 {
			p.Tail = tx.CreatedAt
		}
		switch {
		case dup:
			p.Duplicates++
		case q != nil:
			seenBad[q.SHA256] = i
			p.Quarantined = append(p.Quarantined, *q)
		default:
			seen[tx.ID] = i
			p.Items = append(p.Items, tx)
			lastValid = tx.CreatedAt
		}
	}
	p.HeadTie = ties(entries)
	slices.Reverse(entries)
	p.TailTie = ties(entries)
	slices.Reverse(p.TailTie)
	return p, nil
}

// decodeMeta requires totalPages and currentPage, the two fields a pager
// cannot do without: defaulting a missing totalPages to 0 would end a sync
// early and silently skip data. The counts are informational and default
// to 0, but none may be negative.
func decodeMeta(raw json.RawMessage) (Meta, error) {
	if raw == nil || isNull(raw) {
		return Meta{}, errors.New(`"meta" is missing`)
	}
	if k := kind(raw); k != "an object" {
		return Meta{}, fmt.Errorf(`"meta" is %s, not an object`, k)
	}
	fields, err := objectFields(raw)
	if err != nil {
		return Meta{}, fmt.Errorf(`"meta": %v`, err)
	}
	for _, k := range []string{"totalPages", "currentPage"} {
		if v, ok := fields[k]; !ok || isNull(v) {
			return Meta{}, fmt.Errorf(`"meta.%s" is missing`, k)
		}
	}
	var m Meta
	if err := json.Unmarshal(raw, &m); err != nil {
		return Meta{}, fmt.Errorf(`"meta" has a field that is not an integer: %v`, err)
	}
	if m.TotalItems < 0 || m.ItemCount < 0 || m.ItemsPerPage < 0 || m.TotalPages < 0 || m.CurrentPage < 0 {
		return Meta{}, fmt.Errorf(`"meta" has a negative count: %+v`, m)
	}
	return m, nil
}

// decodeItem validates one item. It returns the transaction, or a
// Quarantined carrying every problem found (not just the first), so an
// operator sees the whole picture from one reason, and an excerpt of raw
// with its size and hash (scorekeeper.NewQuarantined).
//
// Decoding only reads the fields; what a valid transaction is, is
// Transaction.Problems. A field that could not be read is left zero, which
// Problems always names, so the decoder's own reason (missing, not a
// string, not a timestamp…) takes that field's place in the reason.
func decodeItem(raw json.RawMessage) (scorekeeper.Transaction, *scorekeeper.Quarantined) {
	quarantine := func(id string, reasons ...string) (scorekeeper.Transaction, *scorekeeper.Quarantined) {
		// The record keeps an excerpt, the size and the hash of raw, never
		// raw itself: an item may be megabytes, and the record travels in
		// activity payloads. A reason quoting a value whole (an amount
		// that is a big object) is cut too.
		q := scorekeeper.NewQuarantined(id, raw, strings.Join(reasons, "; "))
		return scorekeeper.Transaction{}, &q
	}
	if k := kind(raw); k != "an object" {
		return quarantine("", "item is "+k+", not a JSON object")
	}
	fields, err := objectFields(raw)
	if err != nil {
		return quarantine("", "item is ambiguous: "+err.Error())
	}

	tx, unread := readItem(fields)
	problems := tx.Problems()
	if len(problems) == 0 {
		return tx, nil
	}
	reasons := make([]string, len(problems))
	id := tx.ID
	for i, p := range problems {
		reasons[i] = p.Message
		if r, ok := unread[p.Field]; ok {
			reasons[i] = r
		}
		if p.Field == "id" {
			// Not a usable id: leave ItemID empty rather than store it.
			id = ""
		}
	}
	t, q := quarantine(id, reasons...)
	t.CreatedAt = tx.CreatedAt // where it could be read: the entry's instant
	return t, q
}

// readItem reads an item's fields into a transaction without judging their
// values. unread holds, by field, why a field could not be read; that field
// is left zero. It stays nil for a readable item, the common case.
func readItem(fields map[string]json.RawMessage) (tx scorekeeper.Transaction, unread map[string]string) {
	fail := func(name, reason string) {
		if unread == nil {
			unread = map[string]string{}
		}
		unread[name] = reason
	}
	str := func(name string, dst *string) {
		switch s, ok, err := stringField(fields, name); {
		case err != nil:
			fail(name, err.Error())
		case !ok:
			fail(name, name+" is missing")
		default:
			*dst = s
		}
	}
	str("id", &tx.ID)
	str("userId", &tx.UserID)

	var createdAt string
	str("createdAt", &createdAt)
	if _, ok := unread["createdAt"]; !ok {
		// time.RFC3339 parses an optional fractional second too.
		if t, err := time.Parse(time.RFC3339, createdAt); err != nil {
			fail("createdAt", fmt.Sprintf("createdAt %s is not an RFC 3339 timestamp", quote(createdAt)))
		} else {
			tx.CreatedAt = t.UTC()
		}
	}

	var typ string
	str("type", &typ)
	tx.Type = scorekeeper.TxType(typ)

	if rawAmount, ok := fields["amount"]; !ok || isNull(rawAmount) {
		fail("amount", "amount is missing")
	} else if err := json.Unmarshal(rawAmount, &tx.Amount); err != nil {
		// Amount parses the number's text exactly; it never becomes a
		// float64, so 0.1 is 10 cents and 1.005 is rejected, not rounded.
		fail("amount", "amount is invalid: "+err.Error())
	}
	return tx, unread
}

// objectFields splits raw, valid JSON known to be an object, into its
// members. Unlike unmarshalling
// into a map it rejects duplicate keys: {"amount":1,"amount":1000} has no
// single meaning, and picking one silently is how money goes wrong.
func objectFields(raw []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the opening '{'
		return nil, err
	}
	fields := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string) // inside an object the decoder only yields string keys
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := fields[key]; dup {
			return nil, fmt.Errorf("duplicate key %s", quote(key))
		}
		fields[key] = v
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the object")
	}
	return fields, nil
}

// stringField reads fields[name] as a JSON string. ok is false when the
// field is absent or null; err is set when it is present but not a string
// (a numeric userId would lose its leading zeros, so it is not coerced).
func stringField(fields map[string]json.RawMessage, name string) (s string, ok bool, err error) {
	raw, present := fields[name]
	if !present || isNull(raw) {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%s must be a string, got %s", name, truncateUTF8(string(raw), 64))
	}
	return s, true, nil
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// quote renders an untrusted value for a reason: quoted, escaped and short.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", truncateUTF8(s, max))
	}
	return fmt.Sprintf("%q", s)
}

// kind names the JSON type of raw, valid JSON, for messages.
func kind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
