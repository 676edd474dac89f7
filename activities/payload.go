package activities

import (
	"encoding/json"
	"unicode/utf8"

	"scorekeeper"
)

// maxPagePayload bounds the JSON of a FetchPageResult, and so of the
// ApplyPageInput that carries it with a plan of a few hundred bytes, under
// the design's 256 KiB for any activity payload. (Temporal warns above
// 512 KiB and fails an activity result above 2 MiB, which would stall the
// sync on that page for good.)
const maxPagePayload = 224 << 10

// minBadReason is the JSON length of reason every quarantined record of a
// page keeps, however many share the page.
const minBadReason = 48

// badItems returns the payload items of a page's quarantined records,
// shrunk so that out's JSON, with them, stays under maxPagePayload.
//
// Each record is already bounded (scorekeeper.NewQuarantined: a 4 KiB
// excerpt, a 1 KiB reason), but a page may hold up to a thousand of them.
// They share what the page's valid items leave of the budget, in page
// order: a record takes what it needs as long as every later one can
// still have its floor — its id, size and hash and minBadReason of its
// reason — so the first malformed items keep their excerpts whole and
// later ones shrink, the excerpt first (down to nothing), then the reason
// (down to its floor). A floor is about 230 bytes with a UUID id, so a
// page of 1000 malformed items fits (its records share what their floors
// leave); only pages whose floors alone exceed the budget go over it, by
// that much (ids near MaxTxIDLength, of characters JSON escapes).
//
// It measures out as it is: it must run once the rest of out is set.
func badItems(out FetchPageResult, qs []scorekeeper.Quarantined) []BadItem {
	if len(qs) == 0 {
		return nil
	}
	out.Quarantined = nil
	left := maxPagePayload - len(`,"quarantined":[]`)
	if b, err := json.Marshal(out); err == nil {
		// On error (it cannot happen for a page upstream sent) the
		// payload fails to encode anyway; the records still get bounded.
		left -= len(b)
	}
	items := make([]BadItem, len(qs))
	frames := make([]int, len(qs))
	floors := make([]int, len(qs))
	reserve := 0
	for i, q := range qs {
		items[i] = BadItem{ItemID: q.ItemID, Raw: q.Raw, Reason: q.Reason, Size: q.Size, SHA256: q.SHA256, Truncated: q.Truncated}
		frames[i] = frameLen(items[i])
		floors[i] = frames[i] + jsonLen(cutReasonJSON(q.Reason, minBadReason))
		reserve += floors[i]
	}
	for i := range items {
		b := &items[i]
		reserve -= floors[i]
		avail := left - reserve // what b may take, leaving each later record its floor
		if frames[i]+jsonLen(b.Raw)+jsonLen(b.Reason) > avail {
			room := avail - frames[i] - jsonLen(b.Reason) // for the excerpt
			if raw := cutJSON(b.Raw, max(room, 0)); len(raw) < len(b.Raw) {
				b.Raw, b.Truncated = raw, true
			}
			if room < 0 {
				b.Reason = cutReasonJSON(b.Reason, max(minBadReason, avail-frames[i]))
			}
		}
		left -= frames[i] + jsonLen(b.Raw) + jsonLen(b.Reason)
	}
	return items
}

// frameLen is the JSON length of b in a list, but for its raw text and
// reason: keys, id, size, hash, the truncated flag (counted as set, since
// shrinking may set it) and a separating comma.
func frameLen(b BadItem) int {
	b.Raw, b.Reason, b.Truncated = "", "", true
	j, err := json.Marshal(b)
	if err != nil {
		panic(err) // strings, an integer and a boolean always encode
	}
	return len(j) + 1
}

// jsonLen is the length of s encoded by encoding/json (as Temporal's
// payload converter does, HTML-safe), less the two quotes.
func jsonLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			n += asciiJSONLen(c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r == '\u2028', r == '\u2029':
			n += len(`\ufffd`)
		default:
			n += size
		}
		i += size
	}
	return n
}

func asciiJSONLen(c byte) int {
	switch c {
	case '"', '\\', '\b', '\f', '\n', '\r', '\t':
		return 2
	case '<', '>', '&':
		return len(`\u003c`)
	}
	if c < 0x20 {
		return len(`\u0000`)
	}
	return 1
}

// cutJSON returns the longest start of s, ending on a rune boundary, whose
// jsonLen is at most max.
func cutJSON(s string, max int) string {
	n := 0
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		w := jsonLen(s[i : i+size])
		if n+w > max {
			return s[:i]
		}
		n += w
		i += size
	}
	return s
}

// cutReasonJSON returns reason, or when its jsonLen is over max its start
// ended with "…", at most max in all.
func cutReasonJSON(reason string, max int) string {
	const ellipsis = "…"
	if jsonLen(reason) <= max || max < len(ellipsis) {
		return cutJSON(reason, max)
	}
	return cutJSON(reason, max-len(ellipsis)) + ellipsis
}
