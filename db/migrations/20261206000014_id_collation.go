package migrations

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// idColumns are the columns holding transaction ids, which ledgers and a
// user's payouts break ties by and page after.
var idColumns = []column{{"transactions", "id"}, {"payouts", "transaction_id"}}

// registerIDCollation makes transaction ids sort in byte order on
// Postgres, as user ids do (migration 5) and as they do on SQLite: a
// ledger's order among rows of one instant, and its `after` cursors, must
// be the same in every store and in the web's in-memory copy of a ledger,
// whatever locale the database was created with.
func registerIDCollation(m *migrate.Migrations) error {
	return m.Register(
		func(ctx context.Context, db *bun.DB) error { return setCollation(ctx, db, idColumns, `COLLATE "C"`) },
		func(ctx context.Context, db *bun.DB) error { return setCollation(ctx, db, idColumns, "") },
	)
}
