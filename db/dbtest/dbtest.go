// Package dbtest is the store's test kit: fresh migrated databases on real
// Postgres and SQLite, dropped after the test, and a reconciliation check.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"

	"scorekeeper"
	"scorekeeper/db"
)

// AdminURL is the Postgres server tests create their databases on:
// TEST_POSTGRES_URL, or the local trust-auth server.
func AdminURL() string {
	if u := os.Getenv("TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewPostgresURL creates an empty database with a random name and returns
// its URL; the database is dropped when the test ends.
func NewPostgresURL(tb testing.TB) string {
	tb.Helper()
	admin := AdminURL()
	u, err := url.Parse(admin)
	require.NoError(tb, err)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "sk_test_" + hex.EncodeToString(b[:])

	adminDB := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(admin)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = adminDB.ExecContext(ctx, "CREATE DATABASE "+name)
	require.NoError(tb, err, "create test database (is Postgres running at %s?)", u.Host)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := adminDB.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		if err != nil {
			tb.Logf("drop test database %s: %v", name, err)
		}
		adminDB.Close()
	})
	u.Path = "/" + name
	return u.String()
}

// NewPostgres returns a migrated, empty Postgres database for one test.
func NewPostgres(tb testing.TB) *bun.DB {
	tb.Helper()
	return open(tb, NewPostgresURL(tb))
}

// NewSQLiteURL returns the URL of a SQLite file in the test's temp dir.
func NewSQLiteURL(tb testing.TB) string {
	tb.Helper()
	return "file:" + filepath.Join(tb.TempDir(), "scorekeeper.db")
}

// NewSQLite returns a migrated, empty SQLite database for one test.
func NewSQLite(tb testing.TB) *bun.DB {
	tb.Helper()
	return open(tb, NewSQLiteURL(tb))
}

func open(tb testing.TB, dsn string) *bun.DB {
	tb.Helper()
	d, err := db.Open(dsn)
	require.NoError(tb, err)
	// Registered after the drop above, so it runs first: close, then drop.
	tb.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(tb, db.Migrate(ctx, d))
	return d
}

// ForEachDialect runs fn as a subtest on a fresh Postgres database and on a
// fresh SQLite database.
func ForEachDialect(t *testing.T, fn func(t *testing.T, d *bun.DB)) {
	t.Helper()
	t.Run("Postgres", func(t *testing.T) { fn(t, NewPostgres(t)) })
	t.Run("SQLite", func(t *testing.T) { fn(t, NewSQLite(t)) })
}

// RequireReconciled fails the test unless every stored summary equals the
// aggregate recomputed from stored transactions and payouts, checked the
// way ReconcileWorkflow checks it.
func RequireReconciled(tb testing.TB, d *bun.DB) {
	tb.Helper()
	drifts, err := Drifts(context.Background(), d)
	require.NoError(tb, err)
	for i, dr := range drifts {
		if i == 10 {
			tb.Errorf("… and %d more drifted fields", len(drifts)-10)
			break
		}
		tb.Errorf("summary of %s drifted: %s stored %s, recomputed %s", dr.UserID, dr.Field, dr.Stored, dr.Recomputed)
	}
	if len(drifts) > 0 {
		tb.FailNow()
	}
}

// Drifts reconciles every user as ReconcileWorkflow does (db.ReconcileUsers
// page by page, reporting only) and returns every drifted field.
func Drifts(ctx context.Context, d *bun.DB) ([]scorekeeper.Drift, error) {
	var out []scorekeeper.Drift
	after := ""
	for {
		page, err := db.ReconcileUsers(ctx, d, after, 1000, false, time.Now())
		if err != nil {
			return out, err
		}
		out = append(out, page.Drifts...)
		if page.Next == "" {
			return out, nil
		}
		after = page.Next
	}
}

// Name returns a short unique name, for ids in tests.
func Name(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%s", prefix, hex.EncodeToString(b[:]))
}
