package migrations

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"
)

// idColumns are the columns holding transaction ids, which ledgers and a
// user's payouts break ties by and page after.
var idColumns = []struct{ table, column string }{{"transactions", "id"}, {"payouts", "transaction_id"}}

// registerIDCollation makes transaction ids sort in byte order on
// Postgres, as user ids do (migration 5) and as they do on SQLite: a
// ledger's order among rows of one instant, and its `after` cursors, must
// be the same in every store and in the web's in-memory copy of a ledger,
// whatever locale the database was created with.
func registerIDCollation(m *migrate.Migrations) error {
	return m.Register(
		func(ctx context.Context, db *bun.DB) error { return setIDCollation(ctx, db, `COLLATE "C"`) },
		func(ctx context.Context, db *bun.DB) error { return setIDCollation(ctx, db, "") },
	)
}

func setIDCollation(ctx context.Context, db *bun.DB, collate string) error {
	if db.Dialect().Name() != dialect.PG {
		return nil
	}
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, c := range idColumns {
			q := fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE TEXT %s", c.table, c.column, collate)
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s.%s collation: %w", c.table, c.column, err)
			}
		}
		return nil
	})
}
