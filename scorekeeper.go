// Package scorekeeper holds the domain vocabulary of the service: transactions,
// per-user summaries, payouts, exact money and the error codes every layer
// speaks. It depends on nothing but the standard library; storage (db/),
// upstream access (upstream/), Temporal (workflows/, activities/) and HTTP
// (web/) are implemented in their own packages on top of it.
package scorekeeper

import (
	"regexp"
	"time"
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

// Transaction is one validated upstream event.
type Transaction struct {
	ID        string
	UserID    string
	CreatedAt time.Time // UTC
	Type      TxType
	Amount    Amount // > 0
}

// Quarantined is an upstream item that failed validation. It is stored with
// its raw JSON and reason, counted and shown, and never applied.
type Quarantined struct {
	// ItemID is the item's id when it had a readable one, else "".
	ItemID string
	// Raw is the item exactly as upstream sent it.
	Raw    string
	Reason string
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
}

// Balance is earned − spent − payout.
func (s Summary) Balance() Amount { return s.Earned - s.Spent - s.Payout }

// PayoutStatus is where a payout is in its life: requested → paid | failed.
type PayoutStatus string

// Payout statuses.
const (
	PayoutRequested PayoutStatus = "requested"
	PayoutPaid      PayoutStatus = "paid"
	PayoutFailed    PayoutStatus = "failed"
)

// Payout is a payout transaction and its disbursement state.
type Payout struct {
	TransactionID string
	UserID        string
	Amount        Amount
	Status        PayoutStatus
	// Reason says why a payout failed; empty otherwise.
	Reason string
	// ProviderID is the provider's id for a paid payout.
	ProviderID string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

var userIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidUserID reports whether id is 1–64 characters of [A-Za-z0-9_-], the
// only user ids the REST API accepts.
func ValidUserID(id string) bool { return userIDPattern.MatchString(id) }
