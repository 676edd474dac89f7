// Package db is the store: Postgres or SQLite through Bun, selected by
// DATABASE_URL. It owns the schema (embedded migrations), the row types and
// every query; callers see only domain types from the root package.
//
// Every write that changes a summary happens in the same database
// transaction as the rows it summarises, which is what keeps summaries
// exact under retries, crashes and concurrent syncs.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/driver/sqliteshim"
	"github.com/uptrace/bun/migrate"

	"scorekeeper/db/migrations"
)

// Open connects to the database named by dsn: a postgres:// or
// postgresql:// URL selects Postgres, a file: URL (or a plain path) SQLite.
func Open(dsn string) (*bun.DB, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			return nil, fmt.Errorf("invalid postgres URL: %w", err)
		}
		sqldb := sql.OpenDB(pgdriver.NewConnector(
			pgdriver.WithDSN(dsn),
			pgdriver.WithTimeout(10*time.Second),
		))
		sqldb.SetMaxOpenConns(32)
		sqldb.SetMaxIdleConns(32)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		return bun.NewDB(sqldb, pgdialect.New()), nil
	case dsn == "":
		return nil, errors.New("database URL is empty")
	default:
		return openSQLite(dsn)
	}
}

func openSQLite(dsn string) (*bun.DB, error) {
	path := strings.TrimPrefix(dsn, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path != "" && path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	// WAL lets readers run beside the writer; the busy timeout makes a
	// second process wait for the lock instead of failing at once.
	dsn += sep + "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	sqldb, err := sql.Open(sqliteshim.ShimName, dsn)
	if err != nil {
		return nil, err
	}
	// SQLite has one writer. One connection serialises this process's
	// transactions, so a read-then-write transaction can never deadlock
	// against another of ours on the lock upgrade.
	sqldb.SetMaxOpenConns(1)
	sqldb.SetMaxIdleConns(1)
	sqldb.SetConnMaxLifetime(0)
	return bun.NewDB(sqldb, sqlitedialect.New()), nil
}

// IsPostgres reports whether db talks to Postgres.
func IsPostgres(db bun.IDB) bool { return db.Dialect().Name() == dialect.PG }

// Migrate applies every pending migration. It takes the migration lock, so
// any number of processes may call it at once; the ones that lose wait.
func Migrate(ctx context.Context, db *bun.DB) error {
	ms, err := migrations.New()
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	m := migrate.NewMigrator(db, ms)
	if err := m.Init(ctx); err != nil {
		// Two processes initialising at once can race on CREATE TABLE IF
		// NOT EXISTS in Postgres; the second try sees the tables.
		if err2 := m.Init(ctx); err2 != nil {
			return fmt.Errorf("init migrations: %w", err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := m.Lock(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("take migration lock: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	defer m.Unlock(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func Ping(ctx context.Context, db *bun.DB) error {
	return db.PingContext(ctx)
}
