package web

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"
	"unsafe"

	"scorekeeper"
)

// A user's ledger is cached whole, in columns: the routes of one user's
// transactions and of their summary as of an instant are then a binary
// search and a short walk in memory, never a database read, as the plain
// summary is. It is evicted, like the user's summary, by any commit that
// changed the user (a new transaction, a payout settled), and shares the
// cache's byte budget.

// ledgerCheckpoint is how many rows apart the running totals are kept:
// a summary as of any instant folds at most this many rows more.
const ledgerCheckpoint = 64

// Estimated sizes of a cached ledger (see cacheEntry.size).
const (
	ledgerBytes       = int64(unsafe.Sizeof(userLedger{}))
	ledgerRowBytes    = 3*8 + 4 + 1
	ledgerPayoutBytes = int64(unsafe.Sizeof(ledgerPayout{}))
	ledgerTotalsBytes = int64(unsafe.Sizeof(scorekeeper.Summary{}))
)

// userLedger is one user's transactions, oldest first by (createdAt, id),
// the order the store pages by, read in one statement. A ledger too large
// to cache is kept as a marker (tooLarge) so that it is not read whole
// again until the user changes.
type userLedger struct {
	tooLarge bool
	// idsSafe is set when every id is written in JSON as it is (jsonSafe):
	// pages are then encoded from the columns (appendPage).
	idsSafe bool

	// Per row: createdAt and syncedAt in Unix microseconds (the
	// precision stored), the amount in cents, the type, and the end of
	// its id in ids.
	at, synced, cents []int64
	typ               []txCode
	idEnd             []int32
	ids               string
	// payouts are the rows of type payout, in row order, with their state.
	payouts []ledgerPayout
	// totals[j] is the fold (Summary.Add; UserID left empty) of the first
	// j*ledgerCheckpoint rows, for every j up to len(at)/ledgerCheckpoint.
	totals []scorekeeper.Summary
}

// txCode is a transaction type in a byte: its index in txTypes.
type txCode uint8

var txTypes = [...]scorekeeper.TxType{scorekeeper.TxEarned, scorekeeper.TxSpent, scorekeeper.TxPayout}

const codePayout txCode = 2

// noCode stands for no type: every row.
const noCode = txCode(len(txTypes))

// codeOf is t's code; newUserLedger has checked t is one of txTypes.
func codeOf(t scorekeeper.TxType) txCode {
	for i, x := range txTypes {
		if x == t {
			return txCode(i)
		}
	}
	return noCode
}

type ledgerPayout struct {
	row    int32
	status scorekeeper.PayoutStatus
	// settled is settledAt in Unix microseconds; 0 while requested.
	settled int64
}

// newUserLedger builds the cached form of rows, given newest first (as
// the store pages them). It returns nil when the rows' totals overflow:
// the store's fold reports that, the cache does not keep it.
func newUserLedger(rows []scorekeeper.LedgerEntry) *userLedger {
	n := len(rows)
	l := &userLedger{
		at: make([]int64, n), synced: make([]int64, n), cents: make([]int64, n),
		typ: make([]txCode, n), idEnd: make([]int32, n),
		totals: make([]scorekeeper.Summary, 0, n/ledgerCheckpoint+1),
	}
	size := 0
	for _, r := range rows {
		size += len(r.ID)
	}
	ids := make([]byte, 0, size)
	var sum scorekeeper.Summary
	l.idsSafe = true
	for i := range n {
		r := rows[n-1-i]
		if i%ledgerCheckpoint == 0 {
			l.totals = append(l.totals, sum)
		}
		if sum.Add(scorekeeper.Transaction{Type: r.Type, Amount: r.Amount}) != nil {
			return nil
		}
		l.at[i], l.synced[i], l.cents[i] = r.CreatedAt.UnixMicro(), r.SyncedAt.UnixMicro(), r.Amount.Cents()
		l.typ[i] = codeOf(r.Type)
		ids = append(ids, r.ID...)
		l.idsSafe = l.idsSafe && jsonSafe(r.ID)
		l.idEnd[i] = int32(len(ids))
		if r.Type == scorekeeper.TxPayout {
			p := ledgerPayout{row: int32(i), status: r.Status}
			if !r.SettledAt.IsZero() {
				p.settled = r.SettledAt.UnixMicro()
			}
			l.payouts = append(l.payouts, p)
		}
	}
	if n%ledgerCheckpoint == 0 {
		// A checkpoint for every n/ledgerCheckpoint, the last included.
		l.totals = append(l.totals, sum)
	}
	l.ids = string(ids)
	return l
}

// size estimates the ledger's memory.
func (l *userLedger) size() int64 {
	return ledgerBytes + int64(len(l.at))*ledgerRowBytes + int64(len(l.ids)) +
		int64(len(l.payouts))*ledgerPayoutBytes + int64(len(l.totals))*ledgerTotalsBytes
}

func (l *userLedger) id(i int) string {
	start := int32(0)
	if i > 0 {
		start = l.idEnd[i-1]
	}
	return l.ids[start:l.idEnd[i]]
}

// before returns the number of rows that come before (at, id) in row
// order; id "" sorts before every row at that instant.
func (l *userLedger) before(at int64, id string) int {
	return sort.Search(len(l.at), func(i int) bool {
		return l.at[i] > at || (l.at[i] == at && l.id(i) >= id)
	})
}

// span returns the rows f selects: a page walks [lo, end) from end - 1
// down, keeping the rows of type want (all when want is noCode); total
// match f in all, on every page.
func (l *userLedger) span(f scorekeeper.LedgerFilter) (lo, end, total int, want txCode) {
	hi := len(l.at)
	if !f.From.IsZero() {
		lo = l.before(scorekeeper.CeilMicro(f.From).UnixMicro(), "")
	}
	if !f.To.IsZero() {
		hi = max(lo, l.before(scorekeeper.CeilMicro(f.To).UnixMicro(), ""))
	}
	total, want = hi-lo, noCode
	if f.Type != "" {
		total, want = 0, codeOf(f.Type)
		for i := lo; i < hi; i++ {
			if l.typ[i] == want {
				total++
			}
		}
	}
	end = hi
	if f.After.ID != "" {
		// The cursor is a row's createdAt, whole microseconds.
		end = max(lo, min(hi, l.before(f.After.CreatedAt.UnixMicro(), f.After.ID)))
	}
	return lo, end, total, want
}

// page answers f as the store's Ledger does: the rows matching f, newest
// first, from f.After, at most f.Limit of them, and how many match f in all.
func (l *userLedger) page(user string, f scorekeeper.LedgerFilter) ([]scorekeeper.LedgerEntry, int) {
	lo, end, total, want := l.span(f)
	out := make([]scorekeeper.LedgerEntry, 0, min(f.Limit, end-lo))
	for i := end - 1; i >= lo && len(out) < f.Limit; i-- {
		if want != noCode && l.typ[i] != want {
			continue
		}
		e := scorekeeper.LedgerEntry{
			Transaction: scorekeeper.Transaction{
				ID: l.id(i), UserID: user, CreatedAt: time.UnixMicro(l.at[i]).UTC(),
				Type: txTypes[l.typ[i]], Amount: scorekeeper.AmountFromCents(l.cents[i]),
			},
			SyncedAt: time.UnixMicro(l.synced[i]).UTC(),
		}
		if l.typ[i] == codePayout {
			p := l.payout(i)
			e.Status = p.status
			if p.settled != 0 {
				e.SettledAt = time.UnixMicro(p.settled).UTC()
			}
		}
		out = append(out, e)
	}
	return out, total
}

// encodedPage is a ledger page encoded as JSON.
type encodedPage struct {
	body        []byte
	rows, total int
	// last is the last row's cursor, when rows > 0.
	last scorekeeper.LedgerCursor
}

// appendPage appends the page f selects to b as JSON, byte for byte as
// appendLedgerJSON(l.page(user, f)) would, straight from the columns:
// a page costs no allocation but its buffer. ok is false when an id
// needs escaping (none valid does; the caller then takes page).
func (l *userLedger) appendPage(b []byte, f scorekeeper.LedgerFilter) (p encodedPage, ok bool) {
	if !l.idsSafe {
		return p, false
	}
	lo, end, total, want := l.span(f)
	p.total = total
	b = append(b, '[')
	last := -1
	// One encoder per column: the days of creation run on, those of
	// syncing too, but apart.
	var created, synced instantEncoder
	// The payouts are met newest first too: pj walks them down from the
	// last one before end.
	pj := sort.Search(len(l.payouts), func(j int) bool { return int(l.payouts[j].row) >= end }) - 1
	for i := end - 1; i >= lo && p.rows < f.Limit; i-- {
		if want != noCode && l.typ[i] != want {
			continue
		}
		if p.rows > 0 {
			b = append(b, ',')
		}
		p.rows++
		last = i
		b = append(b, `{"id":"`...)
		b = append(b, l.id(i)...)
		b = append(b, `","type":"`...)
		b = append(b, txTypes[l.typ[i]]...)
		b = append(b, `","amount":`...)
		b = appendAmount(b, scorekeeper.AmountFromCents(l.cents[i]))
		b = append(b, `,"createdAt":"`...)
		b = created.append(b, l.at[i])
		b = append(b, `","syncedAt":"`...)
		b = synced.append(b, l.synced[i])
		b = append(b, '"')
		if l.typ[i] == codePayout {
			for int(l.payouts[pj].row) > i {
				pj--
			}
			if st := l.payouts[pj].status; st != "" {
				b = append(b, `,"status":"`...)
				b = append(b, st...)
				b = append(b, '"')
			}
		}
		b = append(b, '}')
	}
	p.body = append(b, ']')
	if last >= 0 {
		p.last = scorekeeper.LedgerCursor{CreatedAt: time.UnixMicro(l.at[last]).UTC(), ID: l.id(last)}
	}
	return p, true
}

// payout is the state of row i, a payout.
func (l *userLedger) payout(i int) ledgerPayout {
	j, _ := slices.BinarySearchFunc(l.payouts, int32(i), func(p ledgerPayout, row int32) int { return int(p.row - row) })
	return l.payouts[j]
}

// summaryAsOf folds what was created by asOf, and the settlements of
// those payouts recorded by asOf, as the store's SummaryAsOf does: the
// nearest checkpoint's totals, then at most ledgerCheckpoint-1 rows.
func (l *userLedger) summaryAsOf(user string, asOf time.Time) scorekeeper.Summary {
	// A stored instant is at or before asOf when at or before asOf
	// rounded down to the microsecond.
	at := asOf.Truncate(time.Microsecond).UnixMicro()
	n := sort.Search(len(l.at), func(i int) bool { return l.at[i] > at })
	s := l.totals[n/ledgerCheckpoint]
	for i := n / ledgerCheckpoint * ledgerCheckpoint; i < n; i++ {
		// Cannot fail: every prefix of these totals was folded at load.
		_ = s.Add(scorekeeper.Transaction{Type: txTypes[l.typ[i]], Amount: scorekeeper.AmountFromCents(l.cents[i])})
	}
	s.UserID = user
	for _, p := range l.payouts {
		if int(p.row) >= n {
			break
		}
		if p.settled == 0 || p.settled > at {
			// Still requested at asOf: it stays in payout.
			continue
		}
		s.Settle(p.status, scorekeeper.AmountFromCents(l.cents[p.row]))
	}
	return s
}

// maxLedgerRows is the most rows a cached ledger may hold: an entry
// larger than an eighth of the budget is not cached (see add).
func (c *Cache) maxLedgerRows() int {
	return int(c.maxBytes / 8 / (ledgerRowBytes + 8))
}

// ledgerFor returns the user's cached ledger, reading it whole on a miss
// and caching it if nothing changed while it was read; nil when the cache
// is not following the store or the ledger is too large to keep (the
// caller asks the store). Concurrent misses of one user share one read.
func (c *Cache) ledgerFor(ctx context.Context, userID string) (*userLedger, error) {
	now := time.Now()
	c.mu.RLock()
	live, st := c.liveAt(now), c.stamp()
	e, ok := c.ledgers[userID]
	c.mu.RUnlock()
	if !live {
		return nil, nil
	}
	if ok {
		e.touch()
		if e.ledger.tooLarge {
			return nil, nil
		}
		return e.ledger, nil
	}
	v, err, _ := c.ledgerReads.Do(userID, func() (any, error) {
		// A few whole-ledger reads at a time: each holds its rows twice
		// in memory while it converts them, and many at once (a cold
		// cache under load) would hold many.
		select {
		case c.ledgerSlots <- struct{}{}:
			defer func() { <-c.ledgerSlots }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		limit := c.maxLedgerRows()
		rows, _, err := c.Store.Ledger(ctx, scorekeeper.LedgerFilter{UserID: userID, Limit: limit + 1})
		if err != nil {
			return nil, err
		}
		key := strings.Clone(userID)
		if len(rows) > 0 {
			// The row's string, not the caller's (which may point into a
			// reused buffer).
			key = rows[0].UserID
		}
		tooLarge := &userLedger{tooLarge: true}
		l := tooLarge
		if len(rows) <= limit {
			if l = newUserLedger(rows); l == nil {
				return nil, nil
			}
			if entryBytes+int64(len(key))+l.size() > c.maxBytes/8 {
				// Rows with long ids: add would not keep it, and every
				// request would read it whole again.
				l = tooLarge
			}
		}
		e := &cacheEntry{user: key, ledger: l, size: entryBytes + int64(len(key)) + l.size()}
		c.mu.Lock()
		if st == c.stamp() {
			c.add(e)
		}
		c.mu.Unlock()
		return l, nil
	})
	if err != nil || v == nil {
		return nil, err
	}
	if l := v.(*userLedger); !l.tooLarge {
		return l, nil
	}
	return nil, nil
}

// Ledger serves a page of the user's ledger from memory when the cache
// holds it (reading it whole on a miss), from the store otherwise.
func (c *Cache) Ledger(ctx context.Context, f scorekeeper.LedgerFilter) ([]scorekeeper.LedgerEntry, int, error) {
	if f.Limit <= 0 {
		return c.Store.Ledger(ctx, f)
	}
	l, err := c.ledgerFor(ctx, f.UserID)
	if err != nil || l == nil {
		return c.Store.Ledger(ctx, f)
	}
	rows, total := l.page(f.UserID, f)
	return rows, total, nil
}

// SummaryAsOf serves the user's summary as of an instant from their
// cached ledger when the cache holds it, from the store otherwise. The
// user must exist (as the store requires).
func (c *Cache) SummaryAsOf(ctx context.Context, userID string, asOf time.Time) (scorekeeper.Summary, error) {
	if asOf.IsZero() {
		return c.Store.SummaryAsOf(ctx, userID, asOf)
	}
	if _, err := c.Summary(ctx, userID); err != nil {
		return scorekeeper.Summary{}, err
	}
	l, err := c.ledgerFor(ctx, userID)
	if err != nil || l == nil {
		return c.Store.SummaryAsOf(ctx, userID, asOf)
	}
	return l.summaryAsOf(userID, asOf), nil
}

// appendLedgerPage appends the ledger page f selects to b as JSON when the
// cache holds the user's ledger (reading it whole on a miss); ok is false
// when it does not, could not read it, or cannot encode it: the caller
// then asks Ledger, which goes to the store, as Ledger itself would.
func (c *Cache) appendLedgerPage(ctx context.Context, f scorekeeper.LedgerFilter, b []byte) (p encodedPage, ok bool) {
	if f.Limit <= 0 {
		return p, false
	}
	if l, err := c.ledgerFor(ctx, f.UserID); err == nil && l != nil {
		return l.appendPage(b, f)
	}
	return p, false
}
