package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// Counter rows of the change feed.
const (
	counterGeneration    = "generation"
	counterChangesPruned = "changes_pruned_through"
	// changesKept is how long change rows are kept; a reader further
	// behind than this starts over (ChangeFeed.Reset).
	changesKept = 10 * time.Minute
)

type changeRow struct {
	bun.BaseModel `bun:"table:summary_changes"`

	Gen       int64     `bun:"gen,pk"`
	Users     string    `bun:"users,notnull"`
	ChangedAt time.Time `bun:"changed_at,notnull"`
}

// bumpGeneration takes the next generation for a write that changed the
// given users (or only the watermark, when users is empty) and records the
// change. It runs last in the write's transaction: the generation row is
// locked from here to commit, which orders commits by generation and
// keeps the lock short.
func bumpGeneration(ctx context.Context, tx bun.IDB, users []string, now time.Time) error {
	var gen int64
	err := tx.NewRaw(`INSERT INTO counters (name, label, value) VALUES (?, '', 1)
		ON CONFLICT (name, label) DO UPDATE SET value = counters.value + 1
		RETURNING value`, counterGeneration).
		Scan(ctx, &gen)
	if err != nil {
		return fmt.Errorf("take generation: %w", err)
	}
	slices.Sort(users)
	list, err := json.Marshal(users)
	if err != nil {
		return err
	}
	row := changeRow{Gen: gen, Users: string(list), ChangedAt: now}
	if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("record changes: %w", err)
	}
	if gen%200 == 0 {
		return pruneChanges(ctx, tx, now)
	}
	return nil
}

func pruneChanges(ctx context.Context, tx bun.IDB, now time.Time) error {
	var through sql.NullInt64
	cutoff := now.Add(-changesKept)
	if err := tx.NewSelect().
		Model((*changeRow)(nil)).
		ColumnExpr("MAX(gen)").
		Where("changed_at < ?", cutoff).
		Scan(ctx, &through); err != nil {
		return fmt.Errorf("prune changes: %w", err)
	}
	if !through.Valid {
		return nil
	}
	if _, err := tx.NewDelete().Model((*changeRow)(nil)).Where("gen <= ?", through.Int64).Exec(ctx); err != nil {
		return fmt.Errorf("prune changes: %w", err)
	}
	_, err := tx.NewRaw(`INSERT INTO counters (name, label, value) VALUES (?, '', ?)
		ON CONFLICT (name, label) DO UPDATE SET value = EXCLUDED.value`, counterChangesPruned, through.Int64).
		Exec(ctx)
	return err
}

// ReadChanges reads, in one snapshot, the current generation, the users
// changed after generation after, and the sync state, so a cache can pair
// what it evicts with the watermark it serves.
func ReadChanges(ctx context.Context, d *bun.DB, after int64) (scorekeeper.Changes, error) {
	var out scorekeeper.Changes
	var opts *sql.TxOptions
	if IsPostgres(d) {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	err := d.RunInTx(ctx, opts, func(ctx context.Context, tx bun.Tx) error {
		out = scorekeeper.Changes{}
		var counters []counterRow
		if err := tx.NewSelect().
			Model(&counters).
			Where("name IN (?)", bun.List([]string{counterGeneration, counterChangesPruned})).
			Scan(ctx); err != nil {
			return fmt.Errorf("read generation: %w", err)
		}
		var pruned int64
		for _, c := range counters {
			switch c.Name {
			case counterGeneration:
				out.Gen = c.Value
			case counterChangesPruned:
				pruned = c.Value
			}
		}
		if pruned > after {
			out.Reset = true
		} else if out.Gen > after {
			var rows []changeRow
			if err := tx.NewSelect().
				Model(&rows).
				Where("gen > ?", after).
				Where("gen <= ?", out.Gen).
				Scan(ctx); err != nil {
				return fmt.Errorf("read changes: %w", err)
			}
			seen := map[string]bool{}
			for _, r := range rows {
				var users []string
				if err := json.Unmarshal([]byte(r.Users), &users); err != nil {
					return fmt.Errorf("read changes: generation %d: %w", r.Gen, err)
				}
				for _, u := range users {
					if !seen[u] {
						seen[u] = true
						out.Users = append(out.Users, u)
					}
				}
			}
		}
		var st syncStateRow
		err := tx.NewSelect().Model(&st).Where("name = ?", TransactionsStream).Scan(ctx)
		switch {
		case err == nil:
			t := st.SyncedThrough.UTC()
			out.SyncedThrough = &t
		case err != sql.ErrNoRows:
			return fmt.Errorf("read sync state: %w", err)
		}
		return nil
	})
	return out, err
}
