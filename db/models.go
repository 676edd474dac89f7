package db

import (
	"time"

	"github.com/uptrace/bun"

	"scorekeeper"
)

// Row types mirror the tables. They stay in this package: callers get
// domain types through the converters below.

type txRow struct {
	bun.BaseModel `bun:"table:transactions"`

	ID          string    `bun:"id,pk"`
	UserID      string    `bun:"user_id,notnull"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
	Type        string    `bun:"type,notnull"`
	AmountCents int64     `bun:"amount_cents,notnull"`
	SyncedAt    time.Time `bun:"synced_at,notnull"`
}

type summaryRow struct {
	bun.BaseModel `bun:"table:user_summaries,alias:s"`

	UserID       string `bun:"user_id,pk"`
	EarnedCents  int64  `bun:"earned_cents,notnull"`
	SpentCents   int64  `bun:"spent_cents,notnull"`
	PayoutCents  int64  `bun:"payout_cents,notnull"`
	PaidOutCents int64  `bun:"paid_out_cents,notnull"`
	FailedCents  int64  `bun:"failed_cents,notnull"`
	// CanceledCents sums the payouts an operator canceled.
	CanceledCents int64     `bun:"canceled_cents,notnull"`
	UpdatedAt     time.Time `bun:"updated_at,notnull"`
}

type payoutRow struct {
	bun.BaseModel `bun:"table:payouts"`

	TransactionID string    `bun:"transaction_id,pk"`
	UserID        string    `bun:"user_id,notnull"`
	AmountCents   int64     `bun:"amount_cents,notnull"`
	Status        string    `bun:"status,notnull"`
	Reason        string    `bun:"reason,notnull"`
	ProviderID    string    `bun:"provider_id,notnull"`
	CreatedAt     time.Time `bun:"created_at,notnull"`
	UpdatedAt     time.Time `bun:"updated_at,notnull"`
	// Attempts counts the requests sent to the provider; SettledAt is
	// when the payout became paid or failed (zero: not yet).
	Attempts  int64     `bun:"attempts,notnull"`
	SettledAt time.Time `bun:"settled_at,nullzero"`
}

type quarantineRow struct {
	bun.BaseModel `bun:"table:quarantine"`

	// RawHash is the SHA-256 of the whole item; Raw is an excerpt of it
	// (all of it unless RawTruncated), RawSize its length in bytes.
	RawHash      string    `bun:"raw_hash,pk"`
	ItemID       string    `bun:"item_id,notnull"`
	Raw          string    `bun:"raw,notnull"`
	RawSize      int64     `bun:"raw_size,notnull"`
	RawTruncated bool      `bun:"raw_truncated,notnull"`
	Reason       string    `bun:"reason,notnull"`
	FirstSeenAt  time.Time `bun:"first_seen_at,notnull"`
}

type syncStateRow struct {
	bun.BaseModel `bun:"table:sync_state"`

	Name          string    `bun:"name,pk"`
	SyncedThrough time.Time `bun:"synced_through,notnull"`
	Cursor        string    `bun:"cursor,notnull"`
	Version       int64     `bun:"version,notnull"`
	UpdatedAt     time.Time `bun:"updated_at,notnull"`
}

func toTxRow(t scorekeeper.Transaction, now time.Time) txRow {
	return txRow{
		ID:          t.ID,
		UserID:      t.UserID,
		CreatedAt:   t.CreatedAt.UTC(),
		Type:        string(t.Type),
		AmountCents: t.Amount.Cents(),
		SyncedAt:    now,
	}
}

func toSummary(r summaryRow) scorekeeper.Summary {
	return scorekeeper.Summary{
		UserID:         r.UserID,
		Earned:         scorekeeper.AmountFromCents(r.EarnedCents),
		Spent:          scorekeeper.AmountFromCents(r.SpentCents),
		Payout:         scorekeeper.AmountFromCents(r.PayoutCents),
		PaidOut:        scorekeeper.AmountFromCents(r.PaidOutCents),
		FailedPayout:   scorekeeper.AmountFromCents(r.FailedCents),
		CanceledPayout: scorekeeper.AmountFromCents(r.CanceledCents),
	}
}

func toPayout(r payoutRow) scorekeeper.Payout {
	return scorekeeper.Payout{
		TransactionID: r.TransactionID,
		UserID:        r.UserID,
		Amount:        scorekeeper.AmountFromCents(r.AmountCents),
		Status:        scorekeeper.PayoutStatus(r.Status),
		Reason:        r.Reason,
		ProviderID:    r.ProviderID,
		CreatedAt:     r.CreatedAt.UTC(),
		UpdatedAt:     r.UpdatedAt.UTC(),
		Attempts:      int(r.Attempts),
		SettledAt:     r.SettledAt.UTC(),
	}
}
