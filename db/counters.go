package db

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// Counter names. Each is a family of monotonic counters by label.
const (
	// CounterApplied counts transactions stored, by type.
	CounterApplied = "transactions_applied"
	// CounterQuarantined counts distinct malformed items kept (label "").
	CounterQuarantined = "transactions_quarantined"
	// CounterPayouts counts payouts entering each status (requested when
	// stored, then paid or failed).
	CounterPayouts = "payouts"
	// CounterUpstreamRequests counts upstream requests by HTTP status code,
	// or "error" when no response came back.
	CounterUpstreamRequests = "upstream_requests"
	// CounterPagesFetchedTwice counts upstream pages answered twice for
	// the same request of one kind (label ""); the planner never asks
	// twice, so it stays 0 unless an answer was lost after it came.
	CounterPagesFetchedTwice = "pages_fetched_twice"
	// CounterReconcileDrift is a gauge: the users found drifted by the
	// last reconciliation (label "").
	CounterReconcileDrift = "reconcile_drift_users"
)

type counterRow struct {
	bun.BaseModel `bun:"table:counters,alias:c"`

	Name  string `bun:"name,pk"`
	Label string `bun:"label,pk"`
	Value int64  `bun:"value,notnull"`
}

// counterKey names one counter.
type counterKey struct{ name, label string }

// addCounters adds deltas in one upsert, keys in a fixed order so
// concurrent transactions lock counter rows in the same order.
func addCounters(ctx context.Context, tx bun.IDB, deltas map[counterKey]int64) error {
	rows := make([]counterRow, 0, len(deltas))
	for k, v := range deltas {
		if v != 0 {
			rows = append(rows, counterRow{Name: k.name, Label: k.label, Value: v})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	slices.SortFunc(rows, func(a, b counterRow) int {
		if c := cmpString(a.Name, b.Name); c != 0 {
			return c
		}
		return cmpString(a.Label, b.Label)
	})
	_, err := tx.NewInsert().
		Model(&rows).
		On("CONFLICT (name, label) DO UPDATE").
		Set("value = c.value + EXCLUDED.value").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("update counters: %w", err)
	}
	return nil
}

// AddCounter adds delta to one counter in its own transaction.
func AddCounter(ctx context.Context, d bun.IDB, name, label string, delta int64) error {
	return addCounters(ctx, d, map[counterKey]int64{{name, label}: delta})
}

// SetCounter sets a counter to value: for the few numbers that are gauges
// (a reconciliation's result), kept beside the counters so every process
// reports them alike.
func SetCounter(ctx context.Context, d bun.IDB, name, label string, value int64) error {
	row := counterRow{Name: name, Label: label, Value: value}
	if _, err := d.NewInsert().
		Model(&row).
		On("CONFLICT (name, label) DO UPDATE").
		Set("value = EXCLUDED.value").
		Exec(ctx); err != nil {
		return fmt.Errorf("set counter %s: %w", name, err)
	}
	return nil
}

// Counters reads every counter: name → label → value.
func Counters(ctx context.Context, d bun.IDB) (map[string]map[string]int64, error) {
	var rows []counterRow
	if err := d.NewSelect().Model(&rows).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	out := map[string]map[string]int64{}
	for _, r := range rows {
		if out[r.Name] == nil {
			out[r.Name] = map[string]int64{}
		}
		out[r.Name][r.Label] = r.Value
	}
	return out, nil
}

// OverduePayouts counts payouts still requested that were stored before
// the given instant: the ones to alert on (held users' aside).
func OverduePayouts(ctx context.Context, d bun.IDB, before time.Time) (int, error) {
	n, err := d.NewSelect().
		Model((*payoutRow)(nil)).
		Where("status = ?", string(scorekeeper.PayoutRequested)).
		Where("updated_at < ?", before.UTC()).
		// Held payouts wait for an operator on purpose
		// (scorekeeper_payouts_held_users counts those users).
		Where("user_id NOT IN (SELECT user_id FROM payout_holds)").
		Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count overdue payouts: %w", err)
	}
	return int(n), nil
}
