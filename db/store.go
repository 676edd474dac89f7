package db

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// Store is scorekeeper.Store over one database, Postgres or SQLite: every
// call is a query. It also carries the upstream budget whose use the sync
// status reports.
type Store struct {
	db     *bun.DB
	budget Budget
}

var _ scorekeeper.Store = (*Store)(nil)

// NewStore is the store over d; budget is the upstream request budget (N
// 0: the status reports no budget figures).
func NewStore(d *bun.DB, budget Budget) *Store { return &Store{db: d, budget: budget} }

// DB is the database, for the write side (the sync's and payouts'
// activities), which calls this package's functions inside its own
// transactions.
func (s *Store) DB() *bun.DB { return s.db }

// Budget is the upstream request budget the store was made with.
func (s *Store) Budget() Budget { return s.budget }

// PayoutHold reads the hold on a user's payouts (see GetPayoutHold).
func (s *Store) PayoutHold(ctx context.Context, userID string) (*scorekeeper.PayoutHold, error) {
	return GetPayoutHold(ctx, s.db, userID)
}

// Now is the database's clock.
func (s *Store) Now(ctx context.Context) (time.Time, error) { return Now(ctx, s.db) }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return Ping(ctx, s.db) }

// AsOf reads the watermark of the transaction feed. It is read before the
// data it labels, so the data is at least that fresh.
func (s *Store) AsOf(ctx context.Context) (*time.Time, error) {
	st, err := GetSyncState(ctx, s.db, TransactionsStream)
	if scorekeeper.ErrorCode(err) == scorekeeper.ENotFound {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	t := st.SyncedThrough.UTC()
	return &t, nil
}

// Summary reads a user's summary (see GetSummary).
func (s *Store) Summary(ctx context.Context, userID string) (scorekeeper.Summary, error) {
	return GetSummary(ctx, s.db, userID)
}

// SummaryAsOf computes a user's summary as of an instant (see SummaryAsOf).
func (s *Store) SummaryAsOf(ctx context.Context, userID string, asOf time.Time) (scorekeeper.Summary, error) {
	return SummaryAsOf(ctx, s.db, userID, asOf)
}

// Ledger reads a page of a user's ledger (see UserLedgerPage).
func (s *Store) Ledger(ctx context.Context, f scorekeeper.LedgerFilter) ([]scorekeeper.LedgerEntry, int, error) {
	return UserLedgerPage(ctx, s.db, f)
}

// PayoutTotals reads a page of the payout listing (see ListPayoutTotals).
func (s *Store) PayoutTotals(ctx context.Context, f scorekeeper.PayoutFilter) ([]scorekeeper.PayoutTotal, int, error) {
	return ListPayoutTotals(ctx, s.db, f)
}

// UserPayouts reads a page of a user's payouts (see UserPayoutPage).
func (s *Store) UserPayouts(ctx context.Context, f scorekeeper.UserPayoutFilter) ([]scorekeeper.Payout, int, error) {
	return UserPayoutPage(ctx, s.db, f)
}

// QuarantinePage reads a page of quarantined items (see
// ListQuarantinePage).
func (s *Store) QuarantinePage(ctx context.Context, f scorekeeper.QuarantineFilter) ([]scorekeeper.QuarantineItem, int, error) {
	return ListQuarantinePage(ctx, s.db, f)
}

// SyncStatus reads the sync's status (see ReadSyncStatus).
func (s *Store) SyncStatus(ctx context.Context) (scorekeeper.SyncStatus, error) {
	return ReadSyncStatus(ctx, s.db, s.budget)
}

// Changes reads the change feed (see ReadChanges).
func (s *Store) Changes(ctx context.Context, after int64) (scorekeeper.Changes, error) {
	return ReadChanges(ctx, s.db, after)
}

// SummariesAfter reads summaries by user id (see SummariesAfter).
func (s *Store) SummariesAfter(ctx context.Context, after string, limit int) ([]scorekeeper.Summary, error) {
	return SummariesAfter(ctx, s.db, after, limit)
}
