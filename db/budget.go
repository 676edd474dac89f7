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
	ID        string    `bun:"id,notnull"`
	GrantedAt time.Time `bun:"granted_at,notnull"`
	Holder    string    `bun:"holder,notnull"`
	Kind      string    `bun:"kind,notnull"`
	Request   string    `bun:"request,notnull"`
	Answered  bool      `bun:"answered,notnull"`
}

// Budget is a sliding-window request budget kept in the database, so every
// process that shares the database shares it: at most N grants in any
// window of Per + Margin, on the database's clock.
//
// A grant is stamped at grant time + Grant.Hold (the request timeout: the
// latest the request can reach upstream) until Settle stamps it with the
// time its answer came. Upstream received the request before its answer
// left, so N+1 requests can never reach upstream within Per, however long
// a request took to leave or to arrive. Margin only absorbs the time
// upstream takes to count a request it received, and clock granularity.
type Budget struct {
	Name   string
	N      int
	Per    time.Duration
	Margin time.Duration
}

// NewBudget is the budget of n requests per per under name, with the
// margin MarginFor gives per: the one way callers build a budget, so every
// process sharing name counts its window the same.
func NewBudget(name string, n int, per time.Duration) Budget {
	return Budget{Name: name, N: n, Per: per, Margin: MarginFor(per)}
}

// MarginFor is the budget margin for a period: half a percent, from 50 ms
// to 300 ms (300 ms at 1m). Settled stamps make the budget exact against
// upstream's window up to upstream's own bookkeeping, so the margin can be
// small, and every millisecond of it is throughput.
func MarginFor(per time.Duration) time.Duration {
	return min(max(per/200, 50*time.Millisecond), 300*time.Millisecond)
}

// Window is the length grants are counted over.
func (b Budget) Window() time.Duration { return b.Per + b.Margin }

// Grant is one request about to be made.
type Grant struct {
	// ID names the grant for Settle; unique.
	ID string
	// Holder is who asked (an activity id), for operators.
	Holder string
	// Kind is what the request is for (fresh, rescan, probe).
	Kind string
	// Hold is the longest the request can take to reach upstream.
	Hold time.Duration
}

// Acquire grants g now if the window has room. Otherwise it grants nothing
// and returns how long until a slot frees. now is the database's clock at
// the decision.
func (b Budget) Acquire(ctx context.Context, d *bun.DB, g Grant) (granted bool, now time.Time, wait time.Duration, err error) {
	err = retryTx(ctx, d, func(ctx context.Context, tx bun.Tx) error {
		granted, wait = false, 0
		var err error
		if now, err = b.lock(ctx, tx); err != nil {
			return err
		}
		var stamps []time.Time
		if err := tx.NewSelect().
			Model((*budgetGrantRow)(nil)).
			Column("granted_at").
			Where("name = ?", b.Name).
			Where("granted_at > ?", now.Add(-b.Window())).
			OrderExpr("granted_at").
			Scan(ctx, &stamps); err != nil {
			return fmt.Errorf("read budget: %w", err)
		}
		if len(stamps) >= b.N {
			wait = max(stamps[len(stamps)-b.N].Add(b.Window()).Sub(now), time.Millisecond)
			return nil
		}
		grant := budgetGrantRow{Name: b.Name, ID: g.ID, GrantedAt: now.Add(max(g.Hold, 0)), Holder: g.Holder, Kind: g.Kind}
		if _, err := tx.NewInsert().Model(&grant).Exec(ctx); err != nil {
			return fmt.Errorf("grant budget: %w", err)
		}
		// Grants are kept an hour for the spending report, then trimmed.
		if _, err := tx.NewDelete().
			Model((*budgetGrantRow)(nil)).
			Where("name = ?", b.Name).
			Where("granted_at < ?", now.Add(-time.Hour-b.Window())).
			Exec(ctx); err != nil {
			return fmt.Errorf("trim budget: %w", err)
		}
		granted = true
		return nil
	})
	return granted, now, wait, err
}

// lock serialises grants across processes (the lock row on Postgres;
// SQLite's immediate transactions already do) and reads the clock after
// the lock is held, so grants are stamped in the order they were made.
func (b Budget) lock(ctx context.Context, tx bun.Tx) (time.Time, error) {
	lock := budgetLockRow{Name: b.Name, UpdatedAt: time.Now().UTC()}
	if _, err := tx.NewInsert().
		Model(&lock).
		On("CONFLICT (name) DO UPDATE").
		Set("updated_at = EXCLUDED.updated_at").
		Exec(ctx); err != nil {
		return time.Time{}, fmt.Errorf("lock budget: %w", err)
	}
	return Now(ctx, tx)
}

// Settle stamps grant id with the database's time now, when the request's
// answer (or failure) came: the request reached upstream before that, if at
// all. request names the page asked for; answered says a page came back.
// twice reports that the same page was answered before within the last
// hour for a grant of the same kind, which the sync's planner never asks
// for (counted for operators). Late coverage re-reads on purpose what a
// fresh read read before, and a window of one second cannot be moved off
// the bounds an earlier read had (syncplan.Avoid): a page answered for
// grants of different kinds is no page fetched twice.
func (b Budget) Settle(ctx context.Context, d *bun.DB, id, request string, answered bool) (twice bool, err error) {
	err = retryTx(ctx, d, func(ctx context.Context, tx bun.Tx) error {
		twice = false
		now, err := Now(ctx, tx)
		if err != nil {
			return err
		}
		if answered {
			n, err := tx.NewSelect().
				Model((*budgetGrantRow)(nil)).
				Where("name = ?", b.Name).
				Where("request = ?", request).
				Where("answered").
				Where("id <> ?", id).
				Where("kind = (?)", tx.NewSelect().Model((*budgetGrantRow)(nil)).Column("kind").
					Where("name = ?", b.Name).Where("id = ?", id)).
				Count(ctx)
			if err != nil {
				return fmt.Errorf("read budget: %w", err)
			}
			twice = n > 0
		}
		if _, err := tx.NewUpdate().
			Model((*budgetGrantRow)(nil)).
			Set("granted_at = ?", now).
			Set("request = ?", request).
			Set("answered = ?", answered).
			Where("name = ?", b.Name).
			Where("id = ?", id).
			Where("granted_at > ?", now).
			Exec(ctx); err != nil {
			return fmt.Errorf("settle budget: %w", err)
		}
		if twice {
			return addCounters(ctx, tx, map[counterKey]int64{{CounterPagesFetchedTwice, ""}: 1})
		}
		return nil
	})
	return twice, err
}

// AnsweredLike reports whether upstream answered, within the last hour
// (grants older than that are pruned), a request whose name matches
// pattern as SQL LIKE does: % stands for any run of characters, _ for
// one. The caller's names must hold neither where it means them literally.
func (b Budget) AnsweredLike(ctx context.Context, d bun.IDB, pattern string) (bool, error) {
	n, err := d.NewSelect().
		Model((*budgetGrantRow)(nil)).
		Where("name = ?", b.Name).
		Where("request LIKE ?", pattern).
		Where("answered").
		Count(ctx)
	if err != nil {
		return false, fmt.Errorf("read budget: %w", err)
	}
	return n > 0, nil
}

// Stamps returns the stamps that count in the window ending at now, in
// order (in-flight grants stamped ahead of now included).
func (b Budget) Stamps(ctx context.Context, d bun.IDB, now time.Time) ([]time.Time, error) {
	var stamps []time.Time
	if err := d.NewSelect().
		Model((*budgetGrantRow)(nil)).
		Column("granted_at").
		Where("name = ?", b.Name).
		Where("granted_at > ?", now.UTC().Add(-b.Window())).
		OrderExpr("granted_at").
		Scan(ctx, &stamps); err != nil {
		return nil, fmt.Errorf("read budget: %w", err)
	}
	for i := range stamps {
		stamps[i] = stamps[i].UTC()
	}
	return stamps, nil
}

// Used returns how many grants count in the period ending at now.
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

// Spent counts the grants since the given instant by kind.
func (b Budget) Spent(ctx context.Context, d bun.IDB, since time.Time) (map[string]int, error) {
	var rows []struct {
		Kind string `bun:"kind"`
		N    int    `bun:"n"`
	}
	if err := d.NewSelect().
		Model((*budgetGrantRow)(nil)).
		Column("kind").
		ColumnExpr("count(*) AS n").
		Where("name = ?", b.Name).
		Where("granted_at > ?", since.UTC()).
		Group("kind").
		Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read budget: %w", err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Kind] = r.N
	}
	return out, nil
}

// Now reads the database's clock: every process that shares the database
// shares it, so budget stamps and sync windows never depend on one
// machine's clock. SQLite has no server: its clock is this machine's,
// which is the only one an embedded database is shared on. A clock set
// on ctx (WithClock) stands in for either.
func Now(ctx context.Context, d bun.IDB) (time.Time, error) {
	if clock, ok := ctx.Value(clockKey{}).(func() time.Time); ok {
		return clock().UTC(), nil
	}
	if !IsPostgres(d) {
		return time.Now().UTC(), nil
	}
	var now time.Time
	if err := d.NewRaw("SELECT clock_timestamp()").Scan(ctx, &now); err != nil {
		return time.Time{}, fmt.Errorf("read database clock: %w", err)
	}
	return now.UTC(), nil
}

type clockKey struct{}

// WithClock returns ctx carrying clock as the database's clock for Now and
// everything that reads it (leases, the budget, the sync's windows): the
// sync's simulation runs the real activities on SQLite in virtual time.
func WithClock(ctx context.Context, clock func() time.Time) context.Context {
	return context.WithValue(ctx, clockKey{}, clock)
}
