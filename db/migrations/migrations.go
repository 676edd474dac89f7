// Package migrations embeds the versioned SQL migrations of the store. The
// same files run on Postgres and SQLite, so they use only SQL both accept.
package migrations

import (
	"embed"

	"github.com/uptrace/bun/migrate"
)

//go:embed *.sql
var sqlFiles embed.FS

// New returns the store's migrations, discovered from the embedded files.
func New() (*migrate.Migrations, error) {
	m := migrate.NewMigrations()
	if err := m.Discover(sqlFiles); err != nil {
		return nil, err
	}
	if err := registerCollation(m); err != nil {
		return nil, err
	}
	if err := registerPayoutCanceled(m); err != nil {
		return nil, err
	}
	if err := registerIDCollation(m); err != nil {
		return nil, err
	}
	return m, nil
}
