package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

type leaseRow struct {
	bun.BaseModel `bun:"table:sync_leases,alias:l"`

	Name      string    `bun:"name,pk"`
	Holder    string    `bun:"holder,notnull"`
	ExpiresAt time.Time `bun:"expires_at,notnull"`
}

// Lease is who holds a named lease, until when (database clock).
type Lease struct {
	Holder    string
	ExpiresAt time.Time
}

// AcquireLease takes the named lease for holder, or renews it when holder
// has it, for ttl from now on the database's clock. held is false when
// another holder has it and it has not expired; cur is the lease either way.
func AcquireLease(ctx context.Context, d *bun.DB, name, holder string, ttl time.Duration) (cur Lease, held bool, err error) {
	err = retryTx(ctx, d, func(ctx context.Context, tx bun.Tx) error {
		now, err := Now(ctx, tx)
		if err != nil {
			return err
		}
		row := leaseRow{Name: name, Holder: holder, ExpiresAt: now.Add(ttl)}
		if _, err := tx.NewInsert().
			Model(&row).
			On("CONFLICT (name) DO UPDATE").
			Set("holder = EXCLUDED.holder").
			Set("expires_at = EXCLUDED.expires_at").
			Where("l.holder = EXCLUDED.holder OR l.expires_at < ?", now).
			Exec(ctx); err != nil {
			return fmt.Errorf("acquire lease %s: %w", name, err)
		}
		var got leaseRow
		if err := tx.NewSelect().Model(&got).Where("name = ?", name).Scan(ctx); err != nil {
			return fmt.Errorf("read lease %s: %w", name, err)
		}
		cur = Lease{Holder: got.Holder, ExpiresAt: got.ExpiresAt.UTC()}
		held = got.Holder == holder
		return nil
	})
	return cur, held, err
}

// ReleaseLease gives the lease up, if holder has it.
func ReleaseLease(ctx context.Context, d bun.IDB, name, holder string) error {
	if _, err := d.NewDelete().
		Model((*leaseRow)(nil)).
		Where("name = ?", name).
		Where("holder = ?", holder).
		Exec(ctx); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// GetLease reads the named lease; ok is false when nobody holds it or it
// expired (database clock).
func GetLease(ctx context.Context, d bun.IDB, name string) (cur Lease, ok bool, err error) {
	var row leaseRow
	err = d.NewSelect().Model(&row).Where("name = ?", name).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, fmt.Errorf("read lease %s: %w", name, err)
	}
	now, err := Now(ctx, d)
	if err != nil {
		return Lease{}, false, err
	}
	cur = Lease{Holder: row.Holder, ExpiresAt: row.ExpiresAt.UTC()}
	return cur, cur.ExpiresAt.After(now), nil
}
