package migrations

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"
)

// registerPayoutCanceled lets a payout's status be canceled. Postgres
// replaces the CHECK constraint; SQLite cannot alter one, so the table is
// rebuilt with its indexes, as SQLite's documentation prescribes
// (https://www.sqlite.org/lang_altertable.html#otheralter).
func registerPayoutCanceled(m *migrate.Migrations) error {
	return m.Register(
		func(ctx context.Context, db *bun.DB) error {
			return setPayoutStatuses(ctx, db, "'requested', 'paid', 'failed', 'canceled'")
		},
		func(ctx context.Context, db *bun.DB) error {
			return setPayoutStatuses(ctx, db, "'requested', 'paid', 'failed'")
		},
	)
}

func setPayoutStatuses(ctx context.Context, db *bun.DB, statuses string) error {
	var stmts []string
	if db.Dialect().Name() == dialect.PG {
		stmts = []string{
			"ALTER TABLE payouts DROP CONSTRAINT payouts_status_check",
			"ALTER TABLE payouts ADD CONSTRAINT payouts_status_check CHECK (status IN (" + statuses + "))",
		}
	} else {
		const columns = "transaction_id, user_id, amount_cents, status, reason, provider_id, created_at, updated_at, attempts, settled_at"
		stmts = []string{
			`CREATE TABLE payouts_new (
				transaction_id TEXT PRIMARY KEY REFERENCES transactions (id),
				user_id        TEXT NOT NULL,
				amount_cents   BIGINT NOT NULL CHECK (amount_cents > 0),
				status         TEXT NOT NULL CHECK (status IN (` + statuses + `)),
				reason         TEXT NOT NULL DEFAULT '',
				provider_id    TEXT NOT NULL DEFAULT '',
				created_at     TIMESTAMPTZ NOT NULL,
				updated_at     TIMESTAMPTZ NOT NULL,
				attempts       BIGINT NOT NULL DEFAULT 0,
				settled_at     TIMESTAMPTZ
			)`,
			"INSERT INTO payouts_new (" + columns + ") SELECT " + columns + " FROM payouts",
			"DROP TABLE payouts",
			"ALTER TABLE payouts_new RENAME TO payouts",
			"CREATE INDEX payouts_user_id_status_idx ON payouts (user_id, status)",
			"CREATE INDEX payouts_status_created_at_idx ON payouts (status, created_at)",
			"CREATE INDEX payouts_user_id_created_at_idx ON payouts (user_id, created_at, transaction_id)",
		}
	}
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("payout statuses (%s): %w", strings.SplitN(q, "\n", 2)[0], err)
			}
		}
		return nil
	})
}
