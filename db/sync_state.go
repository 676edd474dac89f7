package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// SyncState is the stored progress of a sync stream.
type SyncState struct {
	Name string
	// SyncedThrough is the instant through which upstream data is stored.
	SyncedThrough time.Time
	// Cursor is the sync's own progress record (JSON), opaque to the store.
	Cursor string
	// Version increases with every update; updates name the version they
	// expect, so a stale writer fails instead of moving progress backwards.
	Version   int64
	UpdatedAt time.Time
}

// CursorUpdate moves a SyncState from ExpectVersion to the given values.
type CursorUpdate struct {
	Name          string
	ExpectVersion int64
	SyncedThrough time.Time
	Cursor        string
}

// EnsureSyncState creates the named sync state at syncedThrough if it does
// not exist yet, and returns the stored state either way.
func EnsureSyncState(ctx context.Context, db bun.IDB, name string, syncedThrough time.Time, now time.Time) (SyncState, error) {
	row := syncStateRow{Name: name, SyncedThrough: syncedThrough.UTC(), Cursor: "{}", Version: 1, UpdatedAt: now.UTC()}
	if _, err := db.NewInsert().Model(&row).On("CONFLICT (name) DO NOTHING").Exec(ctx); err != nil {
		return SyncState{}, fmt.Errorf("create sync state: %w", err)
	}
	return GetSyncState(ctx, db, name)
}

// GetSyncState reads the named sync state; a missing one is ENotFound.
func GetSyncState(ctx context.Context, db bun.IDB, name string) (SyncState, error) {
	var row syncStateRow
	err := db.NewSelect().Model(&row).Where("name = ?", name).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return SyncState{}, scorekeeper.Errorf(scorekeeper.ENotFound, "sync state %q not found", name)
	} else if err != nil {
		return SyncState{}, fmt.Errorf("read sync state: %w", err)
	}
	return toSyncState(row), nil
}

// advanceCursor is a compare-and-set on the state's version.
func advanceCursor(ctx context.Context, tx bun.IDB, u CursorUpdate, now time.Time) (SyncState, error) {
	row := syncStateRow{
		Name:          u.Name,
		SyncedThrough: u.SyncedThrough.UTC(),
		Cursor:        u.Cursor,
		Version:       u.ExpectVersion + 1,
		UpdatedAt:     now,
	}
	if row.Cursor == "" {
		row.Cursor = "{}"
	}
	res, err := tx.NewUpdate().
		Model(&row).
		Column("synced_through", "cursor", "version", "updated_at").
		Where("name = ?", u.Name).
		Where("version = ?", u.ExpectVersion).
		Exec(ctx)
	if err != nil {
		return SyncState{}, fmt.Errorf("advance sync state: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return SyncState{}, fmt.Errorf("advance sync state: %w", err)
	} else if n != 1 {
		return SyncState{}, scorekeeper.Errorf(scorekeeper.EConflict,
			"sync state %q moved past version %d: another sync advanced it", u.Name, u.ExpectVersion)
	}
	return toSyncState(row), nil
}

func toSyncState(r syncStateRow) SyncState {
	return SyncState{
		Name:          r.Name,
		SyncedThrough: r.SyncedThrough.UTC(),
		Cursor:        r.Cursor,
		Version:       r.Version,
		UpdatedAt:     r.UpdatedAt.UTC(),
	}
}

// TransactionsStream is the name of the sync state of the transaction feed.
const TransactionsStream = "transactions"
