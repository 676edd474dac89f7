// Package scorekeeper holds the domain vocabulary of the service: transactions,
// per-user summaries, payouts, exact money and the error codes every layer
// speaks. It depends on nothing but the standard library; storage (db/),
// upstream access (upstream/), Temporal (workflows/, activities/) and HTTP
// (web/) are implemented in their own packages on top of it.
package scorekeeper

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// TxType is the kind of an upstream transaction.
type TxType string

// The transaction types upstream sends. Anything else is quarantined.
const (
	TxEarned TxType = "earned"
	TxSpent  TxType = "spent"
	TxPayout TxType = "payout"
)

// TxTypes lists every valid TxType in a stable order.
var TxTypes = []TxType{TxEarned, TxSpent, TxPayout}

// Valid reports whether t is one of the known transaction types.
func (t TxType) Valid() bool {
	return t == TxEarned || t == TxSpent || t == TxPayout
}

// MaxTxIDLength is the longest transaction id accepted. Upstream ids are
// UUIDs (36 characters); the bound keeps a runaway id out of the database
// and out of the payout provider's Idempotency-Key header.
const MaxTxIDLength = 128

// Transaction is one upstream event. Only a transaction that passes
// Validate is stored, counted or paid out.
type Transaction struct {
	ID        string
	UserID    string
	CreatedAt time.Time // UTC
	Type      TxType
	Amount    Amount // > 0
}

// TxProblem is one invalid field of a transaction.
type TxProblem struct {
	// Field is the field's name on the wire: id, userId, createdAt, type
	// or amount.
	Field string
	// Message names the field and, quoted, the offending value.
	Message string
}

// Problems lists every invalid field of t, at most one per field, in wire
// order (id, userId, createdAt, type, amount); nil when t is valid. Every
// field's zero value is a problem, so a field a decoder could not read is
// always named here, in its place.
func (t Transaction) Problems() []TxProblem {
	var ps []TxProblem
	add := func(field, format string, args ...any) {
		ps = append(ps, TxProblem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case t.ID == "":
		add("id", "id is empty")
	case len(t.ID) > MaxTxIDLength:
		add("id", "id is too long: %d bytes, max %d", len(t.ID), MaxTxIDLength)
	case strings.ContainsFunc(t.ID, isControl):
		// The id travels as the payout Idempotency-Key header and in log
		// fields, where a control character would be rewritten or refused.
		add("id", "id %s contains control characters", quote(t.ID))
	}
	if !ValidUserID(t.UserID) {
		add("userId", "userId %s is invalid: want 1-64 characters of [A-Za-z0-9_-]", quote(t.UserID))
	}
	if t.CreatedAt.IsZero() {
		add("createdAt", "createdAt is the zero time")
	}
	if !t.Type.Valid() {
		add("type", "type %s is unknown: want earned, spent or payout", quote(string(t.Type)))
	}
	if t.Amount <= 0 {
		add("amount", "amount %s must be greater than 0", t.Amount)
	}
	return ps
}

// Validate returns nil when t may be stored, and otherwise an *Error with
// code EInvalid naming every problem (see Problems), not just the first.
func (t Transaction) Validate() error {
	ps := t.Problems()
	if len(ps) == 0 {
		return nil
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Message
	}
	return Errorf(EInvalid, "transaction %s is invalid: %s", quote(t.ID), strings.Join(msgs, "; "))
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// quote renders an untrusted value for a message: quoted, escaped, and
// cut to 64 bytes (on a rune boundary) so a runaway value stays readable.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", s[:cut])
}

// Bounds of a quarantine record (Quarantined). Upstream items have no
// size limit of their own; a record of one has.
const (
	// MaxQuarantineExcerpt is the most of a malformed item's raw JSON a
	// record keeps, in bytes.
	MaxQuarantineExcerpt = 4 << 10
	// MaxQuarantineReason is the longest reason a record keeps, in bytes.
	MaxQuarantineReason = 1 << 10
)

// Quarantined is the record of an upstream item that failed validation:
// stored with an excerpt of its raw JSON, its size and hash, and the
// reason; counted and shown, and never applied. It never holds an item
// bigger than MaxQuarantineExcerpt whole, so it can travel (in activity
// payloads, in listings) whatever upstream sent.
type Quarantined struct {
	// ItemID is the item's id when it had a readable one, else "".
	ItemID string
	// Raw is the item as upstream sent it or, when Truncated, its first
	// bytes: at most MaxQuarantineExcerpt, cut on a UTF-8 boundary, with
	// invalid UTF-8 replaced by U+FFFD.
	Raw string
	// Truncated is set when Raw is only the start of the item.
	Truncated bool
	// Size is the whole item's length in bytes.
	Size int64
	// SHA256 is the hex SHA-256 of the whole item as upstream sent it. It
	// is the item's identity: the same item seen twice is kept once.
	SHA256 string
	Reason string
}

// NewQuarantined returns the record of the malformed item raw: its size
// and SHA-256, its first MaxQuarantineExcerpt bytes, and reason cut to
// MaxQuarantineReason bytes. The record does not refer to raw.
func NewQuarantined(itemID string, raw []byte, reason string) Quarantined {
	sum := sha256.Sum256(raw)
	// Only raw's start is copied, with room for a rune that straddles
	// the cut (Excerpt leaves it out whole rather than mangle it).
	start := raw[:min(len(raw), MaxQuarantineExcerpt+utf8.UTFMax)]
	excerpt, cut := Excerpt(string(start), MaxQuarantineExcerpt)
	return Quarantined{
		ItemID:    itemID,
		Raw:       excerpt,
		Truncated: cut || len(start) < len(raw),
		Size:      int64(len(raw)),
		SHA256:    hex.EncodeToString(sum[:]),
		Reason:    CutReason(reason, MaxQuarantineReason),
	}
}

// Bounded returns q as it is stored and listed. A record without SHA256
// holds its whole item in Raw (a record built by hand, or carried by an
// activity payload from before records were bounded): its size and hash
// are computed from Raw. Then Raw and Reason are cut to their maxima. An
// excerpt without the whole item's hash, or a hash that is not 64
// lowercase hex digits, is an error with code EInvalid.
func (q Quarantined) Bounded() (Quarantined, error) {
	if q.SHA256 == "" {
		if q.Truncated {
			return q, Errorf(EInvalid, "quarantined item %s: an excerpt without the whole item's hash", quote(q.ItemID))
		}
		return NewQuarantined(q.ItemID, []byte(q.Raw), q.Reason), nil
	}
	if !validSHA256(q.SHA256) {
		return q, Errorf(EInvalid, "quarantined item %s: hash %s is not a hex SHA-256", quote(q.ItemID), quote(q.SHA256))
	}
	if len(q.Raw) > MaxQuarantineExcerpt || !utf8.ValidString(q.Raw) {
		var cut bool
		q.Raw, cut = Excerpt(q.Raw, MaxQuarantineExcerpt)
		q.Truncated = q.Truncated || cut
	}
	q.Reason = CutReason(q.Reason, MaxQuarantineReason)
	return q, nil
}

func validSHA256(h string) bool {
	if len(h) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Excerpt returns the longest start of s that is at most max bytes long
// and ends on a rune boundary, with each invalid UTF-8 byte replaced by
// U+FFFD (which counts 3 bytes), and whether that is not all of s.
func Excerpt(s string, max int) (string, bool) {
	n := 0 // bytes of the excerpt
	i := 0 // bytes of s consumed
	clean := true
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		width := size
		if r == utf8.RuneError && size == 1 {
			width, clean = utf8.RuneLen(utf8.RuneError), false
		}
		if n+width > max {
			break
		}
		n += width
		i += size
	}
	if clean {
		return s[:i], i < len(s)
	}
	var b strings.Builder
	b.Grow(n)
	for _, r := range s[:i] { // ranging over a string yields U+FFFD for each invalid byte
		b.WriteRune(r)
	}
	return b.String(), i < len(s)
}

// CutReason returns reason, or when it is longer than max bytes its start
// ended with "…", at most max bytes in all.
func CutReason(reason string, max int) string {
	if len(reason) <= max && utf8.ValidString(reason) {
		return reason
	}
	const ellipsis = "…"
	s, cut := Excerpt(reason, max)
	if !cut || max < len(ellipsis) {
		return s
	}
	s, _ = Excerpt(reason, max-len(ellipsis))
	return s + ellipsis
}

// Summary is a user's running totals. Balance is derived, never stored.
type Summary struct {
	UserID string
	Earned Amount
	Spent  Amount
	// Payout sums the user's payout requests that have not failed.
	Payout Amount
	// PaidOut sums the payouts the provider confirmed as paid.
	PaidOut Amount
	// FailedPayout sums payout requests the provider rejected.
	FailedPayout Amount
	// CanceledPayout sums payout requests an operator canceled before
	// they were sent. Like a failed one, a canceled request leaves Payout.
	CanceledPayout Amount
}

// Balance is earned − spent − payout.
func (s Summary) Balance() Amount { return s.Earned - s.Spent - s.Payout }

// Settle folds the settlement of one of the user's payouts of amount a
// into s: paid adds to PaidOut; failed and canceled take the amount back
// out of Payout, into FailedPayout or CanceledPayout. A payout still
// requested changes nothing. The store's summaries, reconciliation, the
// summary as of an instant and the web's cached ledgers all settle by
// this one rule.
func (s *Summary) Settle(status PayoutStatus, a Amount) {
	switch status {
	case PayoutPaid:
		s.PaidOut += a
	case PayoutFailed:
		s.Payout -= a
		s.FailedPayout += a
	case PayoutCanceled:
		s.Payout -= a
		s.CanceledPayout += a
	}
}

// Add folds one of the user's transactions into s: earned adds to Earned,
// spent to Spent, and a payout to Payout, where a payout request stays
// until the provider rejects it. Every total of the user's transactions —
// the store's, reconciliation's, the mock's ground truth — is this fold,
// so they cannot disagree on what a type means. On error (another user's
// transaction, an unknown type, a total that would overflow) s is
// unchanged.
func (s *Summary) Add(t Transaction) error {
	if t.UserID != s.UserID {
		return Errorf(EInvalid, "transaction %s of user %s added to the summary of user %s", quote(t.ID), quote(t.UserID), quote(s.UserID))
	}
	var total *Amount
	switch t.Type {
	case TxEarned:
		total = &s.Earned
	case TxSpent:
		total = &s.Spent
	case TxPayout:
		total = &s.Payout
	default:
		return Errorf(EInvalid, "transaction %s: type %s is unknown", quote(t.ID), quote(string(t.Type)))
	}
	sum, err := total.Add(t.Amount)
	if err != nil {
		return fmt.Errorf("transaction %s of user %s: %w", quote(t.ID), quote(t.UserID), err)
	}
	*total = sum
	return nil
}

// PayoutStatus is where a payout is in its life: requested → paid |
// failed | canceled (by an operator, only if it was never sent).
type PayoutStatus string

// Payout statuses.
const (
	PayoutRequested PayoutStatus = "requested"
	PayoutPaid      PayoutStatus = "paid"
	PayoutFailed    PayoutStatus = "failed"
	PayoutCanceled  PayoutStatus = "canceled"
)

// PayoutStatuses are the statuses in the order reports list them.
var PayoutStatuses = []PayoutStatus{PayoutRequested, PayoutPaid, PayoutFailed, PayoutCanceled}

// Payout is a payout transaction and its disbursement state.
type Payout struct {
	TransactionID string
	UserID        string
	Amount        Amount
	Status        PayoutStatus
	// Reason says why a payout failed or was canceled; empty otherwise.
	Reason string
	// ProviderID is the provider's id for a paid payout.
	ProviderID string
	// CreatedAt is the payout transaction's createdAt: when it was
	// requested.
	CreatedAt time.Time
	UpdatedAt time.Time
	// Attempts counts the requests sent to the provider for it.
	Attempts int
	// SettledAt is when it became paid, failed or canceled; zero while
	// requested.
	SettledAt time.Time
}

// PayoutHold is an operator's hold on a user's payouts: while it stands,
// nothing is sent for the user.
type PayoutHold struct {
	UserID string
	Reason string
	// By is who placed it (the admin token's name, or "operator").
	By     string
	HeldAt time.Time
}

// MaxReasonLen bounds an operator's reason for an action on payouts, in
// characters.
const MaxReasonLen = 500

// ValidReason checks an operator's reason for an action on payouts (a
// hold requires one): printable text of at most MaxReasonLen characters.
// The REST API and the payout workflow's validators both apply it.
func ValidReason(reason string, required bool) error {
	if required && strings.TrimSpace(reason) == "" {
		return Errorf(EInvalid, "a reason is required")
	}
	if utf8.RuneCountInString(reason) > MaxReasonLen || !Printable(reason) {
		return Errorf(EInvalid, "the reason must be at most %d printable characters", MaxReasonLen)
	}
	return nil
}

// Printable reports whether s is valid UTF-8 of printable characters
// (unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the
// ASCII space).
func Printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

// ValidUserID reports whether id is 1–64 characters of [A-Za-z0-9_-], the
// only user ids the REST API accepts. (A loop, not a regular expression:
// it runs on every summary request; for a 7-character id the loop took
// 7 ns on the development machine, the regexp 115 ns.)
func ValidUserID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// SyncStats is what a sync did: SyncWorkflow's result, what
// POST /api/sync?wait=true answers beside the workflow and run ids, and
// the last run's stats in GET /api/sync/status. One type, so the six
// counts are named and documented once.
type SyncStats struct {
	// Fetched counts valid items received from upstream (duplicates included).
	Fetched int `json:"fetched"`
	// Inserted counts transactions stored for the first time.
	Inserted int `json:"inserted"`
	// Duplicates counts items already stored (or repeated on a page).
	Duplicates int `json:"duplicates"`
	// Quarantined counts malformed items seen for the first time.
	Quarantined int `json:"quarantined"`
	// Pages counts upstream pages fetched.
	Pages int `json:"pages"`
	// SyncedThrough is the instant through which upstream data is stored.
	SyncedThrough time.Time `json:"syncedThrough"`
}
