package web

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
)

// Store is everything the routes read from the store. The handlers depend
// on it rather than on a database, so their HTTP behaviour (validation,
// paging, headers, rendering) is tested against an in-memory fake; New
// reads Config.DB through the default implementation when Config.Store is
// nil. Errors are domain errors where they mean something to a client
// (ENotFound for an unknown user, EInvalid for a filter the store refuses);
// anything else is a store failure, which the handlers report as 503 when
// the database is unreachable or too slow and as 500 otherwise.
type Store interface {
	// AsOf returns the instant through which the transaction feed is
	// synced, or nil while no sync has recorded any progress.
	AsOf(ctx context.Context) (*time.Time, error)
	// Summary returns a user's summary; an unknown user is ENotFound.
	Summary(ctx context.Context, userID string) (scorekeeper.Summary, error)
	// PayoutTotals returns one page of the payout listing f selects (see
	// db.ListPayoutTotals) and how many rows the listing has in all.
	PayoutTotals(ctx context.Context, f db.PayoutFilter) ([]db.PayoutTotal, int, error)
	// QuarantinePage returns one page of quarantined items, newest first
	// (see db.ListQuarantinePage), and how many are quarantined in all.
	QuarantinePage(ctx context.Context, f db.QuarantineFilter) ([]db.QuarantineItem, int, error)
	// Ledger returns one page of a user's transactions, newest first (see
	// db.UserLedgerPage), and how many match the filter in all.
	Ledger(ctx context.Context, f db.LedgerFilter) ([]db.LedgerEntry, int, error)
	// SummaryAsOf returns a user's summary as of an instant (see
	// db.SummaryAsOf); an unknown user is ENotFound.
	SummaryAsOf(ctx context.Context, userID string, asOf time.Time) (scorekeeper.Summary, error)
	// UserPayouts returns one page of a user's payouts, newest first (see
	// db.UserPayoutPage), and how many the user has in all.
	UserPayouts(ctx context.Context, f db.UserPayoutFilter) ([]scorekeeper.Payout, int, error)
}

// reader is what the summary and payout routes read, from the Store or,
// when there is one, from the Cache in front of it.
type reader interface {
	AsOf(ctx context.Context) (*time.Time, error)
	Summary(ctx context.Context, userID string) (scorekeeper.Summary, error)
	PayoutTotals(ctx context.Context, f db.PayoutFilter) ([]db.PayoutTotal, int, error)
}

var _ reader = (*Cache)(nil)

// dbStore is the Store over the database: every call is a query.
type dbStore struct{ db *bun.DB }

func (s dbStore) AsOf(ctx context.Context) (*time.Time, error) { return dataAsOf(ctx, s.db) }

func (s dbStore) Summary(ctx context.Context, userID string) (scorekeeper.Summary, error) {
	return db.GetSummary(ctx, s.db, userID)
}

func (s dbStore) PayoutTotals(ctx context.Context, f db.PayoutFilter) ([]db.PayoutTotal, int, error) {
	return db.ListPayoutTotals(ctx, s.db, f)
}

func (s dbStore) QuarantinePage(ctx context.Context, f db.QuarantineFilter) ([]db.QuarantineItem, int, error) {
	return db.ListQuarantinePage(ctx, s.db, f)
}

func (s dbStore) Ledger(ctx context.Context, f db.LedgerFilter) ([]db.LedgerEntry, int, error) {
	return db.UserLedgerPage(ctx, s.db, f)
}

func (s dbStore) SummaryAsOf(ctx context.Context, userID string, asOf time.Time) (scorekeeper.Summary, error) {
	return db.SummaryAsOf(ctx, s.db, userID, asOf)
}

func (s dbStore) UserPayouts(ctx context.Context, f db.UserPayoutFilter) ([]scorekeeper.Payout, int, error) {
	return db.UserPayoutPage(ctx, s.db, f)
}

// dataAsOf reads the watermark of the transaction feed from d (see
// Store.AsOf). It is read before the data it labels, so the data is at
// least that fresh.
func dataAsOf(ctx context.Context, d bun.IDB) (*time.Time, error) {
	st, err := db.GetSyncState(ctx, d, db.TransactionsStream)
	if scorekeeper.ErrorCode(err) == scorekeeper.ENotFound {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	t := st.SyncedThrough.UTC()
	return &t, nil
}
