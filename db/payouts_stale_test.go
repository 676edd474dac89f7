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

func TestUsersWithStalePayouts(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		stored := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		// Stored at 10:00: three users with requested payouts, one of them
		// also with a settled one, and a user with no payouts at all.
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{
			tx("p1", "u3", scorekeeper.TxPayout, "1"),
			tx("p2", "u1", scorekeeper.TxPayout, "2"),
			tx("p3", "u2", scorekeeper.TxPayout, "3"),
			tx("p4", "u2", scorekeeper.TxPayout, "4"),
			tx("e1", "u9", scorekeeper.TxEarned, "5"),
		}}, stored)
		require.NoError(t, err)
		// Stored at 10:05: a fresh request of u4.
		_, err = db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{
			tx("p5", "u4", scorekeeper.TxPayout, "1"),
		}}, stored.Add(5*time.Minute))
		require.NoError(t, err)
		// u1's only payout is settled; u3's is failed.
		_, err = db.MarkPayoutPaid(ctx, d, "p2", "po_2", stored.Add(time.Minute))
		require.NoError(t, err)
		_, err = db.MarkPayoutFailed(ctx, d, "p1", "account_closed", stored.Add(time.Minute))
		require.NoError(t, err)

		t.Run("OK", func(t *testing.T) {
			users, err := db.UsersWithStalePayouts(ctx, d, stored.Add(time.Minute), "", 10)
			require.NoError(t, err)
			require.Equal(t, []string{"u2"}, users, "settled payouts and requests stored since are not stale")
		})
		t.Run("StoredBeforeCutoff", func(t *testing.T) {
			users, err := db.UsersWithStalePayouts(ctx, d, stored.Add(time.Hour), "", 10)
			require.NoError(t, err)
			require.Equal(t, []string{"u2", "u4"}, users)
		})
		t.Run("CutoffIsExclusive", func(t *testing.T) {
			users, err := db.UsersWithStalePayouts(ctx, d, stored, "", 10)
			require.NoError(t, err)
			require.Empty(t, users)
		})
		t.Run("Paging", func(t *testing.T) {
			users, err := db.UsersWithStalePayouts(ctx, d, stored.Add(time.Hour), "", 1)
			require.NoError(t, err)
			require.Equal(t, []string{"u2"}, users, "u2's two payouts make one row")
			users, err = db.UsersWithStalePayouts(ctx, d, stored.Add(time.Hour), "u2", 1)
			require.NoError(t, err)
			require.Equal(t, []string{"u4"}, users)
			users, err = db.UsersWithStalePayouts(ctx, d, stored.Add(time.Hour), "u4", 1)
			require.NoError(t, err)
			require.Empty(t, users)
		})
	})
}
