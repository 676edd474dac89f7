package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

type budgetLockRow struct {
	bun.BaseModel `bun:"table:budget_locks"`

	Name      string    `bun:"name,pk"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
}

type budgetGrantRow struct {
	bun.BaseModel `bun:"table:budget_grants"`

	Name      string    `bun:"name,notnull"`
	GrantedAt time.Time `bun:"granted_at,notnull"`
	Holder    string    `bun:"holder,notnull"`
}

// Budget is a sliding-window request budget kept in the database, so every
// process that shares the database shares it: at most N grants in any
// window of length Per (+ Margin, which absorbs the delay between a grant
// and the request reaching upstream).
type Budget struct {
	Name   string
	N      int
	Per    time.Duration
	Margin time.Duration
}

// window is the length grants are counted over.
func (b Budget) window() time.Duration { return b.Per + b.Margin }

// TryAcquire grants one request now if the window has room. Otherwise it
// grants nothing and returns how long until the oldest grant leaves the
// window. It is TryAcquireKeeping with nothing kept.
func (b Budget) TryAcquire(ctx context.Context, d *bun.DB, holder string, clock func() time.Time) (granted bool, wait time.Duration, err error) {
	return b.TryAcquireKeeping(ctx, d, holder, clock, 0)
}

// TryAcquireKeeping grants one request now only if keep slots of the
// window stay free after it: low-priority work (the overlap re-scan) asks
// with keep > 0, so it never takes the slots fresh data is about to need. holder is recorded for operators (e.g. the activity id). clock
// is read after the lock is held, so grants are stamped in the order they
// were made.
func (b Budget) TryAcquireKeeping(ctx context.Context, d *bun.DB, holder string, clock func() time.Time, keep int) (granted bool, wait time.Duration, err error) {
	limit := max(b.N-max(keep, 0), 0)
	err = retryTx(ctx, d, func(ctx context.Context, tx bun.Tx) error {
		granted, wait = false, 0
		// Upsert the lock row: the row lock serialises grants across
		// processes on Postgres; SQLite's immediate transactions already do.
		lock := budgetLockRow{Name: b.Name, UpdatedAt: clock().UTC()}
		if _, err := tx.NewInsert().
			Model(&lock).
			On("CONFLICT (name) DO UPDATE").
			Set("updated_at = EXCLUDED.updated_at").
			Exec(ctx); err != nil {
			return fmt.Errorf("lock budget: %w", err)
		}
		now := clock().UTC()
		var times []time.Time
		if err := tx.NewSelect().
			Model((*budgetGrantRow)(nil)).
			Column("granted_at").
			Where("name = ?", b.Name).
			Where("granted_at > ?", now.Add(-b.window())).
			OrderExpr("granted_at").
			Scan(ctx, &times); err != nil {
			return fmt.Errorf("read budget: %w", err)
		}
		if len(times) >= limit {
			if limit == 0 {
				wait = b.window()
				return nil
			}
			oldest := times[len(times)-limit]
			wait = oldest.Add(b.window()).Sub(now)
			if wait <= 0 {
				wait = time.Millisecond
			}
			return nil
		}
		grant := budgetGrantRow{Name: b.Name, GrantedAt: now, Holder: holder}
		if _, err := tx.NewInsert().Model(&grant).Exec(ctx); err != nil {
			return fmt.Errorf("grant budget: %w", err)
		}
		// Old grants are never read again; trim them as we go.
		if _, err := tx.NewDelete().
			Model((*budgetGrantRow)(nil)).
			Where("name = ?", b.Name).
			Where("granted_at < ?", now.Add(-10*b.window())).
			Exec(ctx); err != nil {
			return fmt.Errorf("trim budget: %w", err)
		}
		granted = true
		return nil
	})
	return granted, wait, err
}

// Used returns how many grants fall in the window ending now.
func (b Budget) Used(ctx context.Context, d bun.IDB, now time.Time) (int, error) {
	n, err := d.NewSelect().
		Model((*budgetGrantRow)(nil)).
		Where("name = ?", b.Name).
		Where("granted_at > ?", now.UTC().Add(-b.Per)).
		Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("read budget: %w", err)
	}
	return int(n), nil
}
