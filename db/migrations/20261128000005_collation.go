package migrations

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"
)

// userIDColumns are the columns user ids are sorted and paged by.
var userIDColumns = []column{{"user_summaries", "user_id"}, {"payouts", "user_id"}, {"transactions", "user_id"}}

// registerCollation makes user ids sort in byte order on Postgres, as they
// do on SQLite: with a database's default locale (en_US in the postgres
// image) "a_1" sorted before "A_2", so the two backends disagreed on
// sort=userId. Byte order is also what `after` cursors compare with. A Go
// migration because SQLite has neither the syntax nor the need.
func registerCollation(m *migrate.Migrations) error {
	return m.Register(
		func(ctx context.Context, db *bun.DB) error {
			return setCollation(ctx, db, userIDColumns, `COLLATE "C"`)
		},
		func(ctx context.Context, db *bun.DB) error { return setCollation(ctx, db, userIDColumns, "") },
	)
}

// column is a table's text column.
type column struct{ table, name string }

// setCollation gives columns the collation clause collate ("" for the
// database's default), on Postgres only, in one transaction.
func setCollation(ctx context.Context, db *bun.DB, columns []column, collate string) error {
	if db.Dialect().Name() != dialect.PG {
		return nil
	}
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, c := range columns {
			q := fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE TEXT %s", c.table, c.name, collate)
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s.%s collation: %w", c.table, c.name, err)
			}
		}
		return nil
	})
}
