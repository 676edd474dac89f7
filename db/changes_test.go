package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

// Ensure every summary-changing write takes a generation and lists the
// users it changed, read back with the watermark of the same snapshot.
func TestReadChanges(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		c, err := db.ReadChanges(ctx, d, 0)
		require.NoError(t, err)
		require.Equal(t, int64(0), c.Gen)
		require.Nil(t, c.SyncedThrough)

		_, err = db.EnsureSyncState(ctx, d, db.TransactionsStream, t0, time.Now())
		require.NoError(t, err)
		_, err = db.ApplyBatch(ctx, d, db.Batch{Transactions: seedBatch(),
			Cursor: &db.CursorUpdate{Name: db.TransactionsStream, ExpectVersion: 1, SyncedThrough: t0.Add(time.Hour)}}, time.Now())
		require.NoError(t, err)
		c, err = db.ReadChanges(ctx, d, 0)
		require.NoError(t, err)
		require.Equal(t, int64(1), c.Gen)
		require.ElementsMatch(t, []string{"445566", "112233"}, c.Users)
		require.True(t, c.SyncedThrough.Equal(t0.Add(time.Hour)))

		// A batch of duplicates changes nothing: no generation.
		_, err = db.ApplyBatch(ctx, d, db.Batch{Transactions: seedBatch()}, time.Now())
		require.NoError(t, err)
		_, err = db.MarkPayoutPaid(ctx, d, "b1", "po", time.Now())
		require.NoError(t, err)
		c, err = db.ReadChanges(ctx, d, 1)
		require.NoError(t, err)
		require.Equal(t, int64(2), c.Gen)
		require.Equal(t, []string{"112233"}, c.Users)
		require.False(t, c.Reset)

		c, err = db.ReadChanges(ctx, d, 2)
		require.NoError(t, err)
		require.Empty(t, c.Users)
		_ = scorekeeper.ErrorCode
	})
}
