package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

// Ensure a reconciliation reports exactly the user whose summary was
// corrupted, field by field, changes nothing without repair, repairs it
// with repair, and then finds nothing — paging through every user.
func TestReconcileUsers_CorruptedSummary(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		var txs []scorekeeper.Transaction
		for i := range 25 {
			txs = append(txs, tx(fmt.Sprintf("e%d", i), fmt.Sprintf("u%02d", i), scorekeeper.TxEarned, "10.50"))
		}
		txs = append(txs, tx("s1", "u07", scorekeeper.TxSpent, "3"))
		_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: txs}, time.Now())
		require.NoError(t, err)
		_, err = d.NewRaw("UPDATE user_summaries SET earned_cents = earned_cents + 1, spent_cents = 0 WHERE user_id = 'u07'").Exec(ctx)
		require.NoError(t, err)

		walk := func(repair bool) (checked, repaired int, drifts []scorekeeper.Drift) {
			after := ""
			for {
				p, err := db.ReconcileUsers(ctx, d, after, 10, repair, time.Now())
				require.NoError(t, err)
				checked += p.Checked
				repaired += p.Repaired
				drifts = append(drifts, p.Drifts...)
				if p.Next == "" {
					return
				}
				after = p.Next
			}
		}
		checked, repaired, drifts := walk(false)
		require.Equal(t, 25, checked, "every user, across pages")
		require.Zero(t, repaired)
		require.Equal(t, []scorekeeper.Drift{
			{UserID: "u07", Field: "earned", Stored: 1051, Recomputed: 1050},
			{UserID: "u07", Field: "spent", Stored: 0, Recomputed: 300},
		}, drifts)
		_, _, again := walk(false)
		require.Equal(t, drifts, again, "a report changes nothing")

		_, repaired, _ = walk(true)
		require.Equal(t, 1, repaired)
		_, _, drifts = walk(false)
		require.Empty(t, drifts)
		dbtest.RequireReconciled(t, d)
	})
}
