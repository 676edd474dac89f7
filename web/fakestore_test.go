package web_test

import (
	"cmp"
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"scorekeeper"
	"scorekeeper/web"
)

// fakeStore is a scorekeeper.Store in memory, for tests of HTTP behaviour. Its
// listings follow the documented contract of db.ListPayoutTotals and
// db.ListQuarantinePage (filters, order, keyset cursors, totals); whether
// the SQL keeps that contract is for the tests that run on a database.
//
// It also keeps a change feed as the database does (db.ReadChanges): every
// write takes the next generation and records the users it changed (none
// when only the watermark moved), so a web.Cache can stand in front of it
// as one stands in front of the database in production (MustNewApp puts
// one there).
type fakeStore struct {
	mu        sync.Mutex
	asOf      *time.Time
	summaries map[string]scorekeeper.Summary
	// quarantined is kept in listing order: newest first, then by key.
	quarantined []scorekeeper.QuarantineItem
	// ledger holds every transaction applied, with when it was stored;
	// payouts the state of each payout transaction (fakestore_ledger_test.go).
	ledger  []scorekeeper.LedgerEntry
	payouts map[string]scorekeeper.Payout
	// holds are the users whose payouts are on hold (fakeOperator).
	holds map[string]scorekeeper.PayoutHold
	// err, when set, is what every read returns, the change feed's too.
	err error
	// reads counts the calls of the Store's methods (the change feed and
	// the cache's warm-up, which no route makes, are not counted).
	reads int
	// gen is the generation of the last write; changed[g-1] lists the
	// users write g changed.
	gen     int64
	changed [][]string
	// followers are the caches in front of the store (see follow).
	followers []*web.Cache
}

var _ scorekeeper.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{summaries: map[string]scorekeeper.Summary{}, payouts: map[string]scorekeeper.Payout{}, holds: map[string]scorekeeper.PayoutHold{}}
}

// seed stores the design's example, as MustSeed does in a database: user
// 445566 earned 50 + 1.2, spent 12 and was paid out 20 (51.2 − 12 − 20 =
// 19.2), and user 112233 requested a payout of 30 that is not paid yet.
func (s *fakeStore) seed() *fakeStore {
	s.apply(
		tx("a1", "445566", scorekeeper.TxEarned, "50"),
		tx("a2", "445566", scorekeeper.TxEarned, "1.2"),
		tx("a3", "445566", scorekeeper.TxSpent, "12"),
		tx("a4", "445566", scorekeeper.TxPayout, "20"),
		tx("b1", "112233", scorekeeper.TxPayout, "30"),
	)
	s.pay("445566", scorekeeper.MustParseAmount("20"))
	return s
}

// apply adds transactions to their users' summaries, as db.ApplyBatch
// does for new ids (the fake does not track ids: give each once).
func (s *fakeStore) apply(txs ...scorekeeper.Transaction) {
	s.write(func() []string {
		var users []string
		for _, t := range txs {
			sum := s.summaries[t.UserID]
			sum.UserID = t.UserID
			if err := sum.Add(t); err != nil {
				panic(err) // a test gave the fake a transaction the store refuses
			}
			s.summaries[t.UserID] = sum
			users = append(users, t.UserID)
			s.record(t)
		}
		return users
	})
}

// pay confirms amount of user's requested payouts as paid.
func (s *fakeStore) pay(user string, amount scorekeeper.Amount) {
	s.write(func() []string {
		sum := s.summaries[user]
		sum.PaidOut += amount
		s.summaries[user] = sum
		s.settle(user, amount)
		return []string{user}
	})
}

// setAsOf records sync progress through t (nil: none yet).
func (s *fakeStore) setAsOf(t time.Time) {
	s.write(func() []string {
		s.asOf = &t
		return nil
	})
}

// write runs change under s.mu as one committed write: it takes the next
// generation for the users change returns. Then each follower polls the
// feed before write returns: a test's write is served by the next request,
// as it is in production once the cache's poll after it has run (at most
// PollInterval later). A test of read-your-writes uses a cache the store
// does not know (see TestSync_WaitStoresThroughRequest).
func (s *fakeStore) write(change func() []string) {
	s.mu.Lock()
	users := change()
	s.gen++
	s.changed = append(s.changed, users)
	followers := slices.Clone(s.followers)
	s.mu.Unlock()
	for _, c := range followers {
		// A failing poll makes the cache stand aside; reads then go to
		// the store, which has the write all the same.
		_ = c.Poll(context.Background())
	}
}

// follow registers c, a cache in front of s, to be caught up after every
// write made through the fake's methods.
func (s *fakeStore) follow(c *web.Cache) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followers = append(s.followers, c)
}

// quarantine stores items as received at at (kept, as the database keeps
// it, in UTC to the microsecond), bounded as the database bounds them,
// skipping items (by the hash of the whole item) already stored.
func (s *fakeStore) quarantine(at time.Time, items ...scorekeeper.Quarantined) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at = at.UTC().Truncate(time.Microsecond)
	for _, q := range items {
		q, err := q.Bounded()
		if err != nil {
			panic(err)
		}
		key := q.SHA256
		if slices.ContainsFunc(s.quarantined, func(it scorekeeper.QuarantineItem) bool { return it.Key == key }) {
			continue
		}
		s.quarantined = append(s.quarantined, scorekeeper.QuarantineItem{Quarantined: q, ReceivedAt: at, Key: key})
	}
	slices.SortFunc(s.quarantined, compareQuarantine)
}

// readCount returns how many reads the store has answered.
func (s *fakeStore) readCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// fail makes every read return err (nil: succeed again).
func (s *fakeStore) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// errUnreachable is a store failure as the driver reports a database that
// is not there.
var errUnreachable = &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 9, 8, 7), Port: 5432}, Err: syscall.ECONNREFUSED}

// errBroken is a store failure that is a bug, not an outage.
var errBroken = errors.New("sql: database is closed")

// Changes reads the change feed as db.ReadChanges does: the generation,
// the users changed after generation after, and the watermark. The fake
// keeps every change, so it never resets a reader.
func (s *fakeStore) Changes(ctx context.Context, after int64) (scorekeeper.Changes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return scorekeeper.Changes{}, s.err
	}
	out := scorekeeper.Changes{Gen: s.gen}
	seen := map[string]bool{}
	for _, users := range s.changed[min(max(after, 0), s.gen):] {
		for _, u := range users {
			if !seen[u] {
				seen[u] = true
				out.Users = append(out.Users, u)
			}
		}
	}
	if s.asOf != nil {
		t := *s.asOf
		out.SyncedThrough = &t
	}
	return out, nil
}

// Now is the process's clock: the fake has no other.
func (s *fakeStore) Now(ctx context.Context) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return time.Time{}, s.err
	}
	return time.Now().UTC(), nil
}

// Ping fails with the injected error.
func (s *fakeStore) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// SyncStatus reports the watermark; the fake keeps no other sync state.
func (s *fakeStore) SyncStatus(ctx context.Context) (scorekeeper.SyncStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return scorekeeper.SyncStatus{}, s.err
	}
	st := scorekeeper.SyncStatus{Now: time.Now().UTC()}
	if s.asOf != nil {
		st.SyncedThrough = *s.asOf
	}
	return st, nil
}

// SummariesAfter lists summaries by user id after after, as
// db.SummariesAfter does (the cache's warm-up).
func (s *fakeStore) SummariesAfter(ctx context.Context, after string, limit int) ([]scorekeeper.Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	var out []scorekeeper.Summary
	for _, sum := range s.summaries {
		if sum.UserID > after {
			out = append(out, sum)
		}
	}
	slices.SortFunc(out, func(a, b scorekeeper.Summary) int { return cmp.Compare(a.UserID, b.UserID) })
	return out[:min(limit, len(out))], nil
}

func (s *fakeStore) AsOf(ctx context.Context) (*time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return nil, s.err
	}
	if s.asOf == nil {
		return nil, nil
	}
	t := *s.asOf
	return &t, nil
}

func (s *fakeStore) Summary(ctx context.Context, userID string) (scorekeeper.Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return scorekeeper.Summary{}, s.err
	}
	sum, ok := s.summaries[userID]
	if !ok {
		return scorekeeper.Summary{}, scorekeeper.Errorf(scorekeeper.ENotFound, "user %s not found", userID)
	}
	return sum, nil
}

// payoutAmount is the sum a listing of status shows for sum.
func payoutAmount(status string, sum scorekeeper.Summary) (scorekeeper.Amount, bool) {
	switch status {
	case "", "requested":
		return sum.Payout, true
	case "pending":
		return sum.Payout - sum.PaidOut, true
	case "paid":
		return sum.PaidOut, true
	case "failed":
		return sum.FailedPayout, true
	case "canceled":
		return sum.CanceledPayout, true
	}
	return 0, false
}

// listingRead counts a listing's read (the caller holds s.mu) and returns
// the injected error, or the store's error for a limit it refuses.
func (s *fakeStore) listingRead(limit int) error {
	s.reads++
	if s.err != nil {
		return s.err
	}
	if limit <= 0 {
		return scorekeeper.Errorf(scorekeeper.EInvalid, "limit must be positive")
	}
	return nil
}

func (s *fakeStore) PayoutTotals(ctx context.Context, f scorekeeper.PayoutFilter) ([]scorekeeper.PayoutTotal, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.listingRead(f.Limit); err != nil {
		return nil, 0, err
	}
	var cmpRows func(a, b scorekeeper.PayoutTotal) int
	switch f.Sort {
	case "", "userId":
		cmpRows = func(a, b scorekeeper.PayoutTotal) int { return cmp.Compare(a.UserID, b.UserID) }
	case "-payoutAmount":
		cmpRows = func(a, b scorekeeper.PayoutTotal) int {
			return cmp.Or(cmp.Compare(b.Amount, a.Amount), cmp.Compare(a.UserID, b.UserID))
		}
	default:
		return nil, 0, scorekeeper.Errorf(scorekeeper.EInvalid, "unknown sort %q", f.Sort)
	}
	var rows []scorekeeper.PayoutTotal
	for _, sum := range s.summaries {
		a, ok := payoutAmount(f.Status, sum)
		if !ok {
			return nil, 0, scorekeeper.Errorf(scorekeeper.EInvalid, "unknown payout status %q", f.Status)
		}
		if a > 0 {
			rows = append(rows, scorekeeper.PayoutTotal{UserID: sum.UserID, Amount: a})
		}
	}
	slices.SortFunc(rows, cmpRows)
	total := len(rows)
	if f.After.UserID != "" {
		after := scorekeeper.PayoutTotal{UserID: f.After.UserID, Amount: f.After.Amount}
		rows = slices.DeleteFunc(rows, func(r scorekeeper.PayoutTotal) bool { return cmpRows(r, after) <= 0 })
	}
	return rows[:min(f.Limit, len(rows))], total, nil
}

func compareQuarantine(a, b scorekeeper.QuarantineItem) int {
	return cmp.Or(b.ReceivedAt.Compare(a.ReceivedAt), cmp.Compare(a.Key, b.Key))
}

func (s *fakeStore) QuarantinePage(ctx context.Context, f scorekeeper.QuarantineFilter) ([]scorekeeper.QuarantineItem, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.listingRead(f.Limit); err != nil {
		return nil, 0, err
	}
	page := s.quarantined
	if f.After.Key != "" {
		after := scorekeeper.QuarantineItem{ReceivedAt: f.After.ReceivedAt, Key: f.After.Key}
		i := slices.IndexFunc(page, func(it scorekeeper.QuarantineItem) bool { return compareQuarantine(it, after) > 0 })
		if i < 0 {
			i = len(page)
		}
		page = page[i:]
	}
	return slices.Clone(page[:min(f.Limit, len(page))]), len(s.quarantined), nil
}
