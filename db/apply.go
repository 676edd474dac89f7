package db

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"

	"scorekeeper"
)

// chunkSize bounds the rows per INSERT statement, well under the bind
// parameter limits of both databases (65535 in Postgres, 32766 in SQLite).
const chunkSize = 1000

// Batch is one unit of sync work, applied atomically by ApplyBatch.
type Batch struct {
	// Transactions are validated upstream items; ids already stored are
	// skipped, so the same batch may be applied any number of times.
	Transactions []scorekeeper.Transaction
	// Quarantined are malformed items to keep for inspection.
	Quarantined []scorekeeper.Quarantined
	// Cursor, when set, advances the sync state in the same database
	// transaction as the data it covers.
	Cursor *CursorUpdate
	// CursorFunc, when set, computes the cursor update from what the batch
	// stored (how many ids were already there), in the same transaction.
	CursorFunc func(ApplyResult) (CursorUpdate, error)
	// CountFrom and CountTo, when CountTo is set, ask for the number of
	// stored transactions with createdAt in [CountFrom, CountTo] once the
	// batch is stored (ApplyResult.Counted), in the same transaction: the
	// count that proves a window read whose order upstream did not keep.
	CountFrom, CountTo time.Time
}

// ApplyResult reports what ApplyBatch changed.
type ApplyResult struct {
	// Inserted counts transactions stored by this call.
	Inserted int
	// Duplicates counts transactions skipped because their id was already
	// stored (or appeared earlier in the same batch).
	Duplicates int
	// Quarantined counts malformed items not seen before.
	Quarantined int
	// InsertedByType counts Inserted per transaction type.
	InsertedByType map[scorekeeper.TxType]int
	// NewPayouts are the payout requests this call created, in id order.
	NewPayouts []scorekeeper.Payout
	// State is the sync state after the call, when Batch.Cursor was set.
	State *SyncState
	// Counted answers Batch.CountFrom/CountTo.
	Counted int
}

// ApplyBatch stores a batch exactly once, in one database transaction:
// transactions are inserted with ON CONFLICT DO NOTHING and only the ids the
// insert returned are added to the summaries and become payout requests, so
// a retried or concurrent apply of the same items changes nothing twice. If
// b.Cursor is set and the stored version moved, nothing is applied and the
// error has code scorekeeper.EConflict.
func ApplyBatch(ctx context.Context, db *bun.DB, b Batch, now time.Time) (ApplyResult, error) {
	now = now.UTC()
	var res ApplyResult
	// On Postgres the page travels by COPY, which needs the transaction's
	// own connection.
	var run txRunner = db
	var conn *bun.Conn
	if IsPostgres(db) {
		c, err := db.Conn(ctx)
		if err != nil {
			return res, err
		}
		defer c.Close()
		run, conn = c, &c
	}
	err := retryTx(ctx, run, func(ctx context.Context, tx bun.Tx) error {
		var err error
		res, err = applyBatch(ctx, tx, conn, b, now)
		return err
	})
	return res, err
}

func applyBatch(ctx context.Context, tx bun.Tx, conn *bun.Conn, b Batch, now time.Time) (ApplyResult, error) {
	res := ApplyResult{InsertedByType: map[scorekeeper.TxType]int{}}

	// Dedupe within the batch (upstream repeats items across pages) and sort
	// by id so concurrent applies take row locks in the same order.
	txs := make([]scorekeeper.Transaction, 0, len(b.Transactions))
	seen := make(map[string]struct{}, len(b.Transactions))
	for _, t := range b.Transactions {
		if err := t.Validate(); err != nil {
			return res, err
		}
		if _, dup := seen[t.ID]; dup {
			res.Duplicates++
			continue
		}
		seen[t.ID] = struct{}{}
		txs = append(txs, t)
	}
	slices.SortFunc(txs, func(a, b scorekeeper.Transaction) int { return cmpString(a.ID, b.ID) })
	rows := make([]txRow, len(txs))
	for i, t := range txs {
		rows[i] = toTxRow(t, now)
	}

	// On Postgres one statement per chunk inserts the transactions and,
	// from exactly the rows it inserted, adds to the summaries and creates
	// the payout requests (see insertApplyPG). SQLite takes three.
	pg := conn != nil
	inserted := make(map[string]struct{}, len(rows))
	for chunk := range slices.Chunk(rows, chunkSize) {
		var ids []string
		var err error
		if pg {
			ids, err = insertApplyPG(ctx, tx, *conn, chunk, now)
		} else {
			err = tx.NewInsert().
				Model(&chunk).
				On("CONFLICT (id) DO NOTHING").
				Returning("id").
				Scan(ctx, &ids)
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return res, fmt.Errorf("insert transactions: %w", err)
		}
		for _, id := range ids {
			inserted[id] = struct{}{}
		}
	}
	res.Inserted = len(inserted)
	res.Duplicates += len(rows) - len(inserted)

	// The summaries grow by the fold of exactly the inserted transactions.
	// On Postgres the statement above has already added it; the users and
	// new payout requests are still needed here.
	deltas := map[string]*scorekeeper.Summary{}
	var payouts []payoutRow
	for _, t := range txs {
		if _, ok := inserted[t.ID]; !ok {
			continue
		}
		res.InsertedByType[t.Type]++
		d := deltas[t.UserID]
		if d == nil {
			d = &scorekeeper.Summary{UserID: t.UserID}
			deltas[t.UserID] = d
		}
		if err := d.Add(t); err != nil {
			return res, err
		}
		if t.Type == scorekeeper.TxPayout {
			payouts = append(payouts, payoutRow{
				TransactionID: t.ID,
				UserID:        t.UserID,
				AmountCents:   t.Amount.Cents(),
				Status:        string(scorekeeper.PayoutRequested),
				CreatedAt:     t.CreatedAt.UTC(),
				UpdatedAt:     now,
			})
		}
	}
	if !pg {
		if err := addToSummaries(ctx, tx, summaryDeltas(deltas, now)); err != nil {
			return res, err
		}
		for chunk := range slices.Chunk(payouts, chunkSize) {
			if _, err := tx.NewInsert().Model(&chunk).Exec(ctx); err != nil {
				return res, fmt.Errorf("insert payouts: %w", err)
			}
		}
	}
	for _, p := range payouts {
		res.NewPayouts = append(res.NewPayouts, toPayout(p))
	}

	n, err := quarantine(ctx, tx, b.Quarantined, now)
	if err != nil {
		return res, err
	}
	res.Quarantined = n

	counts := map[counterKey]int64{
		{CounterQuarantined, ""}:                              int64(res.Quarantined),
		{CounterPayouts, string(scorekeeper.PayoutRequested)}: int64(len(payouts)),
	}
	for typ, k := range res.InsertedByType {
		counts[counterKey{CounterApplied, string(typ)}] = int64(k)
	}
	if err := addCounters(ctx, tx, counts); err != nil {
		return res, err
	}

	if !b.CountTo.IsZero() {
		n, err := tx.NewSelect().Model((*txRow)(nil)).
			Where("created_at >= ?", b.CountFrom.UTC()).
			Where("created_at <= ?", b.CountTo.UTC()).
			Count(ctx)
		if err != nil {
			return res, fmt.Errorf("count window: %w", err)
		}
		res.Counted = int(n)
	}
	cursor := b.Cursor
	if b.CursorFunc != nil {
		cu, err := b.CursorFunc(res)
		if err != nil {
			return res, err
		}
		cursor = &cu
	}
	if cursor != nil {
		st, err := advanceCursor(ctx, tx, *cursor, now)
		if err != nil {
			return res, err
		}
		res.State = &st
	}
	if len(deltas) > 0 || cursor != nil {
		users := make([]string, 0, len(deltas))
		for u := range deltas {
			users = append(users, u)
		}
		if err := bumpGeneration(ctx, tx, users, now); err != nil {
			return res, err
		}
	}
	return res, nil
}

// summaryDeltas turns per-user folds into the rows addToSummaries adds.
func summaryDeltas(folds map[string]*scorekeeper.Summary, now time.Time) map[string]*summaryRow {
	out := make(map[string]*summaryRow, len(folds))
	for u, s := range folds {
		r := toSummaryRow(*s, now)
		out[u] = &r
	}
	return out
}

// addToSummaries adds per-user deltas with one upsert per chunk, users in
// sorted order so concurrent transactions lock summary rows in one order.
func addToSummaries(ctx context.Context, tx bun.IDB, deltas map[string]*summaryRow) error {
	if len(deltas) == 0 {
		return nil
	}
	users := make([]string, 0, len(deltas))
	for u := range deltas {
		users = append(users, u)
	}
	slices.Sort(users)
	rows := make([]summaryRow, len(users))
	for i, u := range users {
		rows[i] = *deltas[u]
	}
	for chunk := range slices.Chunk(rows, chunkSize) {
		_, err := tx.NewInsert().
			Model(&chunk).
			On("CONFLICT (user_id) DO UPDATE").
			Set("earned_cents = s.earned_cents + EXCLUDED.earned_cents").
			Set("spent_cents = s.spent_cents + EXCLUDED.spent_cents").
			Set("payout_cents = s.payout_cents + EXCLUDED.payout_cents").
			Set("paid_out_cents = s.paid_out_cents + EXCLUDED.paid_out_cents").
			Set("failed_cents = s.failed_cents + EXCLUDED.failed_cents").
			Set("canceled_cents = s.canceled_cents + EXCLUDED.canceled_cents").
			Set("updated_at = EXCLUDED.updated_at").
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("update summaries: %w", err)
		}
	}
	return nil
}

func quarantine(ctx context.Context, tx bun.IDB, items []scorekeeper.Quarantined, now time.Time) (int, error) {
	if len(items) == 0 {
		return 0, nil
	}
	rows := make([]quarantineRow, 0, len(items))
	seen := map[string]struct{}{}
	for _, q := range items {
		// Keyed by the hash of the whole item, which a record carries (it
		// keeps only an excerpt), so the same item is one row however big
		// it is; a record holding its whole item gets its hash here.
		q, err := q.Bounded()
		if err != nil {
			return 0, err
		}
		if _, dup := seen[q.SHA256]; dup {
			continue
		}
		seen[q.SHA256] = struct{}{}
		rows = append(rows, quarantineRow{
			RawHash: q.SHA256, ItemID: q.ItemID, Raw: q.Raw, RawSize: q.Size, RawTruncated: q.Truncated,
			Reason: q.Reason, FirstSeenAt: now,
		})
	}
	slices.SortFunc(rows, func(a, b quarantineRow) int { return cmpString(a.RawHash, b.RawHash) })
	n := 0
	for chunk := range slices.Chunk(rows, chunkSize) {
		var hashes []string
		err := tx.NewInsert().
			Model(&chunk).
			On("CONFLICT (raw_hash) DO NOTHING").
			Returning("raw_hash").
			Scan(ctx, &hashes)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("quarantine: %w", err)
		}
		n += len(hashes)
	}
	return n, nil
}

// retryTx runs fn in a transaction, retrying a few times on Postgres
// deadlocks and serialization failures, which are safe to retry because
// the whole transaction rolled back.
func retryTx(ctx context.Context, db txRunner, fn func(context.Context, bun.Tx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = db.RunInTx(ctx, nil, fn)
		if !isRetryableTxError(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
	return err
}

// txRunner runs a function in a transaction: a *bun.DB (any pooled
// connection) or a bun.Conn (one connection).
type txRunner interface {
	RunInTx(ctx context.Context, opts *sql.TxOptions, fn func(context.Context, bun.Tx) error) error
}

func isRetryableTxError(err error) bool {
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		switch pgErr.Field('C') {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
	}
	return false
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// insertApplyPG sends the page by COPY into a session-private staging
// table, then one statement inserts it ON CONFLICT DO NOTHING and, from
// exactly the rows it inserted, adds to user_summaries (users in id order,
// so concurrent applies lock summary rows in one order) and stores the
// inserted payouts as requested. It returns the inserted ids. COPY skips
// the SQL parser for a thousand rows of values and the summary deltas
// never travel from the client: the database is never the sync's
// bottleneck (BenchmarkApplyBatch).
func insertApplyPG(ctx context.Context, tx bun.IDB, conn bun.Conn, rows []txRow, now time.Time) ([]string, error) {
	// A session-private staging table, emptied at commit; created once
	// per connection.
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS apply_page
		(id text, user_id text, created_at timestamptz, type text, amount_cents bigint)
		ON COMMIT DELETE ROWS`); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, "TRUNCATE apply_page"); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for _, r := range rows {
		buf.WriteString(copyEscape(r.ID))
		buf.WriteByte('\t')
		buf.WriteString(copyEscape(r.UserID))
		buf.WriteByte('\t')
		buf.WriteString(r.CreatedAt.UTC().Format("2006-01-02 15:04:05.999999Z07:00"))
		buf.WriteByte('\t')
		buf.WriteString(r.Type)
		buf.WriteByte('\t')
		buf.WriteString(strconv.FormatInt(r.AmountCents, 10))
		buf.WriteByte('\n')
	}
	if _, err := pgdriver.CopyFrom(ctx, conn, &buf, "COPY apply_page FROM STDIN"); err != nil {
		return nil, fmt.Errorf("copy page: %w", err)
	}
	var ids []string
	err := tx.NewRaw(`WITH ins AS (
			INSERT INTO transactions (id, user_id, created_at, type, amount_cents, synced_at)
			SELECT id, user_id, created_at, type, amount_cents, ? FROM apply_page ORDER BY id
			ON CONFLICT (id) DO NOTHING
			RETURNING id, user_id, type, amount_cents, created_at
		), sums AS (
			INSERT INTO user_summaries AS s
				(user_id, earned_cents, spent_cents, payout_cents, paid_out_cents, failed_cents, updated_at)
			SELECT user_id,
				SUM(CASE WHEN type = 'earned' THEN amount_cents ELSE 0 END),
				SUM(CASE WHEN type = 'spent' THEN amount_cents ELSE 0 END),
				SUM(CASE WHEN type = 'payout' THEN amount_cents ELSE 0 END),
				0, 0, ?
			FROM ins
			GROUP BY user_id
			ORDER BY user_id
			ON CONFLICT (user_id) DO UPDATE SET
				earned_cents = s.earned_cents + EXCLUDED.earned_cents,
				spent_cents = s.spent_cents + EXCLUDED.spent_cents,
				payout_cents = s.payout_cents + EXCLUDED.payout_cents,
				updated_at = EXCLUDED.updated_at
		), pays AS (
			INSERT INTO payouts
				(transaction_id, user_id, amount_cents, status, reason, provider_id, created_at, updated_at)
			SELECT id, user_id, amount_cents, ?, '', '', created_at, ?
			FROM ins
			WHERE type = 'payout'
			ORDER BY id
		)
		SELECT id FROM ins`, now, now, string(scorekeeper.PayoutRequested), now).
		Scan(ctx, &ids)
	return ids, err
}

// copyEscape escapes a value for COPY's text format.
func copyEscape(s string) string {
	if !strings.ContainsAny(s, "\\\t\n\r") {
		return s
	}
	r := strings.NewReplacer("\\", "\\\\", "\t", "\\t", "\n", "\\n", "\r", "\\r")
	return r.Replace(s)
}
