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

type holdRow struct {
	bun.BaseModel `bun:"table:payout_holds"`

	UserID string    `bun:"user_id,pk"`
	Reason string    `bun:"reason,notnull"`
	HeldBy string    `bun:"held_by,notnull"`
	HeldAt time.Time `bun:"held_at,notnull"`
}

func (r holdRow) hold() scorekeeper.PayoutHold {
	return scorekeeper.PayoutHold{UserID: r.UserID, Reason: r.Reason, By: r.HeldBy, HeldAt: r.HeldAt.UTC()}
}

// HoldPayouts puts a user's payouts on hold, or, when they are already,
// changes the reason (the time and author stay those of the first hold).
// The user need not have any transaction yet: a hold placed on a fraud
// report before the first payout arrives keeps that payout from being
// sent.
func HoldPayouts(ctx context.Context, db *bun.DB, userID, reason, by string, now time.Time) (scorekeeper.PayoutHold, error) {
	if reason == "" || by == "" {
		return scorekeeper.PayoutHold{}, scorekeeper.Errorf(scorekeeper.EInvalid, "a hold needs a reason and who placed it")
	}
	var out holdRow
	err := retryTx(ctx, db, func(ctx context.Context, tx bun.Tx) error {
		row := holdRow{UserID: userID, Reason: reason, HeldBy: by, HeldAt: now.UTC()}
		if _, err := tx.NewInsert().Model(&row).
			On("CONFLICT (user_id) DO UPDATE").
			Set("reason = EXCLUDED.reason").
			Exec(ctx); err != nil {
			return fmt.Errorf("hold payouts: %w", err)
		}
		return tx.NewSelect().Model(&out).Where("user_id = ?", userID).Scan(ctx)
	})
	if err != nil {
		return scorekeeper.PayoutHold{}, err
	}
	return out.hold(), nil
}

// ReleasePayouts lifts the hold on a user's payouts and reports whether
// there was one.
func ReleasePayouts(ctx context.Context, db bun.IDB, userID string) (bool, error) {
	res, err := db.NewDelete().Model((*holdRow)(nil)).Where("user_id = ?", userID).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("release payouts: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("release payouts: %w", err)
	}
	return n > 0, nil
}

// GetPayoutHold reads the hold on a user's payouts; nil when there is none.
func GetPayoutHold(ctx context.Context, db bun.IDB, userID string) (*scorekeeper.PayoutHold, error) {
	var row holdRow
	err := db.NewSelect().Model(&row).Where("user_id = ?", userID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read payout hold: %w", err)
	}
	h := row.hold()
	return &h, nil
}

// CountPayoutHolds counts the users whose payouts are on hold.
func CountPayoutHolds(ctx context.Context, db bun.IDB) (int, error) {
	n, err := db.NewSelect().Model((*holdRow)(nil)).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count payout holds: %w", err)
	}
	return int(n), nil
}
