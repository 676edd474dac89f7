package scorekeeper

import (
	"context"
	"time"
)

// Store is what the read side of scorekeeper asks of the stored data: the
// REST API's routes, the read cache in front of them, the sync status and
// the metrics. db.Store implements it over Postgres or SQLite; the cache
// (web.Cache) decorates it; tests of the routes give an in-memory one.
//
// Errors are domain errors where they mean something to a client
// (ENotFound for an unknown user, EInvalid for a filter the store
// refuses); anything else is a store failure.
type Store interface {
	// Now is the store's clock: every figure the store reports is on it.
	Now(ctx context.Context) (time.Time, error)
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error

	// AsOf returns the instant through which the transaction feed is
	// synced, or nil while no sync has recorded any progress.
	AsOf(ctx context.Context) (*time.Time, error)
	// Summary returns a user's summary; an unknown user is ENotFound.
	Summary(ctx context.Context, userID string) (Summary, error)
	// SummaryAsOf returns a user's summary over the transactions created
	// at or before asOf, payouts settled by their settlement time; an
	// unknown user is ENotFound.
	SummaryAsOf(ctx context.Context, userID string, asOf time.Time) (Summary, error)
	// Ledger returns one page of a user's transactions, newest first, and
	// how many match the filter in all.
	Ledger(ctx context.Context, f LedgerFilter) ([]LedgerEntry, int, error)
	// PayoutTotals returns one page of the users with a non-zero payout
	// sum for the filter's status, and how many such users there are.
	PayoutTotals(ctx context.Context, f PayoutFilter) ([]PayoutTotal, int, error)
	// UserPayouts returns one page of a user's payouts, newest first, and
	// how many the user has in all.
	UserPayouts(ctx context.Context, f UserPayoutFilter) ([]Payout, int, error)
	// PayoutHold returns the hold on a user's payouts, nil when none.
	PayoutHold(ctx context.Context, userID string) (*PayoutHold, error)
	// QuarantinePage returns one page of quarantined items, newest first,
	// and how many are quarantined in all.
	QuarantinePage(ctx context.Context, f QuarantineFilter) ([]QuarantineItem, int, error)
	// SyncStatus reads the sync's state as the store holds it, every
	// figure on the store's clock (LastRun is the Syncer's to fill).
	SyncStatus(ctx context.Context) (SyncStatus, error)

	// Changes reads the change feed a cache follows: the users whose
	// summary changed after generation after, in one snapshot with the
	// watermark.
	Changes(ctx context.Context, after int64) (Changes, error)
	// SummariesAfter returns up to limit summaries of users after the
	// given user id, ordered by user id (a cache warms from it).
	SummariesAfter(ctx context.Context, after string, limit int) ([]Summary, error)
}

// Changes is one read of the change feed.
type Changes struct {
	// Gen is the generation the read saw: every change up to it is in
	// Users (or was pruned, see Reset).
	Gen int64
	// Users changed after the generation asked for, up to Gen.
	Users []string
	// Reset is set when changes after the generation asked for were
	// pruned: the reader must drop everything it cached.
	Reset bool
	// SyncedThrough is the watermark as of Gen (nil before the first
	// sync).
	SyncedThrough *time.Time
}

// PayoutFilter selects a page of Store.PayoutTotals. It is comparable, so
// read caches can key listings by it.
type PayoutFilter struct {
	// Status is requested (all not-failed payouts; the default), pending
	// (requested, not yet paid), paid or failed.
	Status string
	// After is where the page starts: rows strictly after it in Sort
	// order. The zero cursor is the first page.
	After PayoutCursor
	// Sort is "userId" (default) or "-payoutAmount".
	Sort  string
	Limit int
}

// PayoutCursor is a position in a payout listing: the sort key of the last
// row of the previous page. It holds values, not a reference to a row, so
// the next page is well defined even when that row has since changed or
// left the listing.
type PayoutCursor struct {
	// UserID is the last row's user; "" means the start of the listing.
	UserID string
	// Amount is the last row's amount; used by sort -payoutAmount only.
	Amount Amount
}

// PayoutTotal is one user's payout sum for a status.
type PayoutTotal struct {
	UserID string
	Amount Amount
}

// UserPayoutFilter selects a page of one user's payouts, newest first by
// (requested at, id). It is comparable.
type UserPayoutFilter struct {
	UserID string
	// After is the previous page's last row; zero: the first page.
	After LedgerCursor
	Limit int
}

// LedgerFilter selects a page of one user's ledger, newest first by
// (createdAt, id). It is comparable, so read caches can key pages by it.
type LedgerFilter struct {
	UserID string
	// Type keeps one type of transaction; "" keeps all.
	Type TxType
	// From (inclusive) and To (exclusive) bound createdAt; zero: open.
	From, To time.Time
	// After is where the page starts: rows strictly older in (createdAt,
	// id) order. The zero cursor is the first page.
	After LedgerCursor
	Limit int
}

// CeilMicro is t rounded up to a whole microsecond, in UTC. Stores keep
// instants at the microsecond, so a stored instant is at or after t
// exactly when it is at or after CeilMicro(t) (and at or before t when at
// or before t.Truncate(time.Microsecond)): ledger bounds are compared so,
// alike in every store and in the web's cached ledgers.
func CeilMicro(t time.Time) time.Time {
	us := t.Truncate(time.Microsecond)
	if us.Before(t) {
		us = us.Add(time.Microsecond)
	}
	return us.UTC()
}

// LedgerCursor is a position in a ledger: the last row of the previous
// page. It holds values, not a row reference, so a row that arrives late
// (older than the position) shows up on a later page and shifts nothing.
type LedgerCursor struct {
	CreatedAt time.Time
	ID        string
}

// LedgerEntry is one row of a user's ledger.
type LedgerEntry struct {
	Transaction
	// SyncedAt is when scorekeeper stored the transaction.
	SyncedAt time.Time
	// Status is a payout's disbursement state; "" for other types.
	Status PayoutStatus
	// SettledAt is when a payout was settled (paid, failed or canceled);
	// zero while it is requested and for other types.
	SettledAt time.Time
}

// QuarantineItem is one quarantined upstream item as listed.
type QuarantineItem struct {
	Quarantined
	// ReceivedAt is when the item was first stored (its batch's clock),
	// as the store keeps it (microseconds).
	ReceivedAt time.Time
	// Key is unique per item (the SHA-256 of its whole raw text, as
	// Quarantined.SHA256) and breaks ties between items received at the
	// same instant, typically one batch.
	Key string
}

// Cursor returns the position just after the item, for the next page.
func (q QuarantineItem) Cursor() QuarantineCursor {
	return QuarantineCursor{ReceivedAt: q.ReceivedAt, Key: q.Key}
}

// QuarantineCursor is a position in the quarantine listing: the
// (ReceivedAt, Key) of the last item of the previous page. The zero
// cursor is the start.
type QuarantineCursor struct {
	ReceivedAt time.Time
	Key        string
}

// QuarantineFilter selects a page of Store.QuarantinePage.
type QuarantineFilter struct {
	// After is where the page starts: items strictly after it in listing
	// order. Zero means from the newest.
	After QuarantineCursor
	// Limit is the page size; it must be positive.
	Limit int
}
