package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// GetSummary reads a user's summary; an unknown user is ENotFound.
func GetSummary(ctx context.Context, db bun.IDB, userID string) (scorekeeper.Summary, error) {
	var row summaryRow
	err := db.NewSelect().Model(&row).Where("user_id = ?", userID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return scorekeeper.Summary{}, scorekeeper.Errorf(scorekeeper.ENotFound, "user %s not found", userID)
	} else if err != nil {
		return scorekeeper.Summary{}, fmt.Errorf("read summary: %w", err)
	}
	return toSummary(row), nil
}

// QuarantineCount returns how many distinct malformed items are kept.
func QuarantineCount(ctx context.Context, db bun.IDB) (int, error) {
	n, err := db.NewSelect().Model((*quarantineRow)(nil)).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count quarantine: %w", err)
	}
	return int(n), nil
}

// SummariesAfter lists up to limit summaries of users after the given user
// id, in id order: a full scan in pages, for warming read caches.
func SummariesAfter(ctx context.Context, db bun.IDB, after string, limit int) ([]scorekeeper.Summary, error) {
	var rows []summaryRow
	err := db.NewSelect().
		Model(&rows).
		Where("user_id > ?", after).
		Order("user_id").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list summaries: %w", err)
	}
	out := make([]scorekeeper.Summary, len(rows))
	for i, r := range rows {
		out[i] = toSummary(r)
	}
	return out, nil
}
