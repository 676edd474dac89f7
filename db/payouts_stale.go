package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// UsersWithStalePayouts lists users, in user order after the given user,
// that have a payout requested since before the given instant: payouts
// stored a while ago that no payout workflow has settled yet, typically
// because the signal that should have woken it was lost.
//
// A requested payout's updated_at is the instant it was stored (any
// transition changes it), so it measures how long the payout has waited,
// unlike created_at, which is upstream's time and is old for every payout
// of a backfill.
func UsersWithStalePayouts(ctx context.Context, db bun.IDB, before time.Time, after string, limit int) ([]string, error) {
	var users []string
	err := db.NewSelect().
		Model((*payoutRow)(nil)).
		ColumnExpr("DISTINCT user_id").
		Where("status = ?", string(scorekeeper.PayoutRequested)).
		Where("updated_at < ?", before.UTC()).
		Where("user_id > ?", after).
		// A held user's payouts wait for an operator, not for a wake-up.
		Where("user_id NOT IN (SELECT user_id FROM payout_holds)").
		OrderExpr("user_id").
		Limit(int64(limit)).
		Scan(ctx, &users)
	if err != nil {
		return nil, fmt.Errorf("list users with stale payouts: %w", err)
	}
	return users, nil
}
