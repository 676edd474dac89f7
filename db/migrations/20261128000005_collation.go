package migrations

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"
)

// userIDColumns are the columns user ids are sorted and paged by.
var userIDColumns = []string{"user_summaries", "payouts", "transactions"}

// registerCollation makes user ids sort in byte order on Postgres, as they
// do on SQLite: with a database's default locale (en_US in the postgres
// image) "a_1" sorted before "A_2", so the two backends disagreed on
// sort=userId. Byte order is also what `after` cursors compare with. A Go
// migration because SQLite has neither the syntax nor the need.
func registerCollation(m *migrate.Migrations) error {
	return m.Register(
		func(ctx context.Context, db *bun.DB) error { return setUserIDCollation(ctx, db, `COLLATE "C"`) },
		func(ctx context.Context, db *bun.DB) error { return setUserIDCollation(ctx, db, "") },
	)
}

func setUserIDCollation(ctx context.Context, db *bun.DB, collate string) error {
	if db.Dialect().Name() != dialect.PG {
		return nil
	}
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, table := range userIDColumns {
			q := fmt.Sprintf("ALTER TABLE %s ALTER COLUMN user_id TYPE TEXT %s", table, collate)
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s.user_id collation: %w", table, err)
			}
		}
		return nil
	})
}
