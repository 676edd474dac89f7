package db_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
)

// Ensure ListQuarantinePage walks every quarantined item exactly once,
// newest first and by key within one instant, on both backends: with
// several items per batch (equal instants), instants that differ by
// fractions of a second (which SQLite compares as text) and a clock with
// nanoseconds the database cannot keep. An item stored mid-walk is newer
// than the cursor, so it neither shows up nor shifts the rest.
func TestListQuarantinePage(t *testing.T) {
	ctx := context.Background()
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		// Batch i holds i%3+1 items; instants step by 0.5 s, 1 µs and 1 ns
		// (the last collapses onto the same microsecond).
		steps := []time.Duration{500 * time.Millisecond, time.Microsecond, time.Nanosecond}
		at := t0
		var want []string // raw texts, newest batch first
		for i := range 9 {
			at = at.Add(steps[i%len(steps)])
			var items []scorekeeper.Quarantined
			for j := range i%3 + 1 {
				id := fmt.Sprintf("q%d-%d", i, j)
				if j == 1 {
					id = "" // an item without a readable id
				}
				items = append(items, scorekeeper.Quarantined{ItemID: id, Raw: fmt.Sprintf(`{"n":%d,"m":%d}`, i, j), Reason: "bad amount"})
			}
			_, err := db.ApplyBatch(ctx, d, db.Batch{Quarantined: items}, at)
			require.NoError(t, err)
			var raws []string
			for _, q := range items {
				raws = append(raws, q.Raw)
			}
			want = append(raws, want...)
		}

		for _, limit := range []int{1, 2, 4, 100} {
			t.Run(fmt.Sprintf("Limit%d", limit), func(t *testing.T) {
				var all []scorekeeper.QuarantineItem
				var after scorekeeper.QuarantineCursor
				for pages := 0; ; pages++ {
					require.Less(t, pages, 100, "paging does not end")
					page, total, err := db.ListQuarantinePage(ctx, d, scorekeeper.QuarantineFilter{After: after, Limit: limit})
					require.NoError(t, err)
					require.Equal(t, len(want), total)
					require.LessOrEqual(t, len(page), limit)
					all = append(all, page...)
					if len(page) < limit {
						break
					}
					after = page[len(page)-1].Cursor()
				}
				require.Len(t, all, len(want))
				seen := map[string]bool{}
				for i, q := range all {
					require.False(t, seen[q.Key], "item %s listed twice", q.Raw)
					seen[q.Key] = true
					require.Equal(t, "bad amount", q.Reason)
					require.Equal(t, time.UTC, q.ReceivedAt.Location())
					if i > 0 {
						prev := all[i-1]
						require.True(t, prev.ReceivedAt.After(q.ReceivedAt) || prev.ReceivedAt.Equal(q.ReceivedAt) && prev.Key < q.Key,
							"%s (%s) before %s (%s)", prev.Raw, prev.ReceivedAt, q.Raw, q.ReceivedAt)
					}
				}
				// The order is checked above; here, that every item came out.
				var got []string
				for _, q := range all {
					got = append(got, q.Raw)
				}
				require.ElementsMatch(t, want, got)
			})
		}

		t.Run("OKItemIDs", func(t *testing.T) {
			page, _, err := db.ListQuarantinePage(ctx, d, scorekeeper.QuarantineFilter{Limit: 100})
			require.NoError(t, err)
			blank := 0
			for _, q := range page {
				if q.ItemID == "" {
					blank++
				}
			}
			require.Equal(t, 6, blank, "batches with 2 or 3 items have one without id")
		})

		t.Run("OKStoredMidWalk", func(t *testing.T) {
			first, _, err := db.ListQuarantinePage(ctx, d, scorekeeper.QuarantineFilter{Limit: 5})
			require.NoError(t, err)
			_, err = db.ApplyBatch(ctx, d, db.Batch{Quarantined: []scorekeeper.Quarantined{{Raw: "late", Reason: "not JSON"}}}, at.Add(time.Hour))
			require.NoError(t, err)
			rest, total, err := db.ListQuarantinePage(ctx, d, scorekeeper.QuarantineFilter{After: first[len(first)-1].Cursor(), Limit: 100})
			require.NoError(t, err)
			require.Equal(t, len(want)+1, total)
			require.Len(t, rest, len(want)-5)
			for _, q := range rest {
				require.NotEqual(t, "late", q.Raw)
			}
		})

		t.Run("ErrInvalid", func(t *testing.T) {
			_, _, err := db.ListQuarantinePage(ctx, d, scorekeeper.QuarantineFilter{})
			require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err))
		})
	})
}

// Ensure a quarantined item is stored as its bounded record — an excerpt,
// the whole item's size and SHA-256 — keyed by that hash, so the same big
// item is one row however often it comes and in whichever form (a record,
// or a record holding the whole item); and that an excerpt without its
// item's hash is refused, storing nothing of the batch.
func TestApplyBatch_QuarantineBoundedRecords(t *testing.T) {
	ctx := context.Background()
	big := []byte(`{"id":"big","amount":-1,"note":"` + strings.Repeat("é", 5<<19) + `"}`)
	sum := sha256.Sum256(big)
	hash := hex.EncodeToString(sum[:])
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		rec := scorekeeper.NewQuarantined("big", big, "amount -1 must be greater than 0")
		res, err := db.ApplyBatch(ctx, d, db.Batch{Quarantined: []scorekeeper.Quarantined{rec, rec}}, t0)
		require.NoError(t, err)
		require.Equal(t, 1, res.Quarantined)

		items, total, err := db.ListQuarantinePage(ctx, d, scorekeeper.QuarantineFilter{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, 1, total)
		require.Equal(t, rec, items[0].Quarantined)
		require.Equal(t, hash, items[0].Key)
		require.EqualValues(t, len(big), items[0].Size)
		require.True(t, items[0].Truncated)
		require.LessOrEqual(t, len(items[0].Raw), scorekeeper.MaxQuarantineExcerpt)

		// Seen again, as a record or whole: the same row.
		for _, again := range []scorekeeper.Quarantined{
			scorekeeper.NewQuarantined("big", big, "amount -1 must be greater than 0"),
			{ItemID: "big", Raw: string(big), Reason: "amount -1 must be greater than 0"},
		} {
			res, err = db.ApplyBatch(ctx, d, db.Batch{Quarantined: []scorekeeper.Quarantined{again}}, t0.Add(time.Minute))
			require.NoError(t, err)
			require.Equal(t, 0, res.Quarantined)
		}
		n, err := db.QuarantineCount(ctx, d)
		require.NoError(t, err)
		require.Equal(t, 1, n)

		for name, bad := range map[string]scorekeeper.Quarantined{
			"ErrExcerptWithoutHash": {Raw: `{"id":`, Truncated: true, Size: 100, Reason: "r"},
			"ErrBadHash":            {Raw: `{}`, SHA256: "not-a-hash", Reason: "r"},
		} {
			ok := scorekeeper.Quarantined{Raw: `{"fine":1}`, Reason: "r"}
			_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: []scorekeeper.Transaction{tx("qb1", "445566", scorekeeper.TxEarned, "1")}, Quarantined: []scorekeeper.Quarantined{ok, bad}}, t0)
			require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err), name)
		}
		n, err = db.QuarantineCount(ctx, d)
		require.NoError(t, err)
		require.Equal(t, 1, n, "a refused batch stores nothing")
		dbtest.RequireReconciled(t, d)
	})
}

// Ensure the migration that bounds quarantine records keeps the rows stored
// before it valid: each gets its size in bytes (not characters), is listed
// cut to an excerpt when it is big, keeps its key (the SHA-256 of the whole
// item, as a record's hash is), so the same item arriving as a bounded
// record is not stored twice.
func TestMigrate_QuarantineRowsFromBefore(t *testing.T) {
	ctx := context.Background()
	small := `{"amount":1}`
	big := `{"note":"` + strings.Repeat("é", 5000) + `"}` // 10011 bytes, 5011 characters
	for name, dsn := range map[string]func(testing.TB) string{"Postgres": dbtest.NewPostgresURL, "SQLite": dbtest.NewSQLiteURL} {
		t.Run(name, func(t *testing.T) {
			d, err := db.Open(dsn(t))
			require.NoError(t, err)
			t.Cleanup(func() { d.Close() })

			// The schema as it was: every SQL migration before the bound.
			files, err := fs.Glob(os.DirFS("migrations"), "*.sql")
			require.NoError(t, err)
			before := fstest.MapFS{}
			for _, f := range files {
				if f < "20261128000008" {
					b, err := os.ReadFile(filepath.Join("migrations", f))
					require.NoError(t, err)
					before[f] = &fstest.MapFile{Data: b}
				}
			}
			ms := migrate.NewMigrations()
			require.NoError(t, ms.Discover(before))
			m := migrate.NewMigrator(d, ms)
			require.NoError(t, m.Init(ctx))
			_, err = m.Migrate(ctx)
			require.NoError(t, err)
			for i, raw := range []string{small, big} {
				sum := sha256.Sum256([]byte(raw))
				_, err := d.ExecContext(ctx, "INSERT INTO quarantine (raw_hash, item_id, raw, reason, first_seen_at) VALUES (?, '', ?, 'old', ?)",
					hex.EncodeToString(sum[:]), raw, t0.Add(time.Duration(i)*time.Second))
				require.NoError(t, err)
			}

			require.NoError(t, db.Migrate(ctx, d))
			items, total, err := db.ListQuarantinePage(ctx, d, scorekeeper.QuarantineFilter{Limit: 10})
			require.NoError(t, err)
			require.Equal(t, 2, total)
			for _, it := range items {
				raw := map[bool]string{true: big, false: small}[it.Size > int64(len(small))]
				sum := sha256.Sum256([]byte(raw))
				require.Equal(t, hex.EncodeToString(sum[:]), it.SHA256)
				require.EqualValues(t, len(raw), it.Size, "raw_size counts bytes")
				require.Equal(t, len(raw) > scorekeeper.MaxQuarantineExcerpt, it.Truncated)
				require.LessOrEqual(t, len(it.Raw), scorekeeper.MaxQuarantineExcerpt)
				require.True(t, strings.HasPrefix(raw, it.Raw))
			}

			res, err := db.ApplyBatch(ctx, d, db.Batch{Quarantined: []scorekeeper.Quarantined{
				scorekeeper.NewQuarantined("", []byte(big), "new"),
				scorekeeper.NewQuarantined("", []byte(small), "new"),
			}}, t0.Add(time.Hour))
			require.NoError(t, err)
			require.Equal(t, 0, res.Quarantined, "rows from before dedupe records of the same items")
		})
	}
}
