package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/mockapi"
	"scorekeeper/web"
)

// truthPayout is how a test settled a payout: its status and when.
type truthPayout struct {
	status    scorekeeper.PayoutStatus
	settledAt time.Time
}

// foldTruth is the summary of user over txs created at or before at, and
// the settlements of their payouts at or before at, computed here from
// the mock's items alone.
func foldTruth(user string, txs []scorekeeper.Transaction, settled map[string]truthPayout, at time.Time) scorekeeper.Summary {
	s := scorekeeper.Summary{UserID: user}
	for _, tx := range txs {
		if tx.UserID != user || tx.CreatedAt.After(at) {
			continue
		}
		switch tx.Type {
		case scorekeeper.TxEarned:
			s.Earned += tx.Amount
		case scorekeeper.TxSpent:
			s.Spent += tx.Amount
		case scorekeeper.TxPayout:
			s.Payout += tx.Amount
			p, ok := settled[tx.ID]
			if !ok || p.settledAt.After(at) {
				continue
			}
			switch p.status {
			case scorekeeper.PayoutPaid:
				s.PaidOut += tx.Amount
			case scorekeeper.PayoutFailed:
				s.Payout -= tx.Amount
				s.FailedPayout += tx.Amount
			case scorekeeper.PayoutCanceled:
				s.Payout -= tx.Amount
				s.CanceledPayout += tx.Amount
			}
		}
	}
	return s
}

// Ensure the ledger and summary-as-of routes answer the mock's truth for
// every user, on both databases, served as production serves them (the
// cache in front of the store, which keeps whole ledgers in memory) and
// by the store alone: an upstream with whole-second timestamps (many ties
// broken by id), payouts paid, failed and canceled at known instants;
// every user's ledger walked at a random page size and type filter equals
// the mock's items newest first, and the summary as of 50 random instants
// per user (items' own instants among them, and fractions of a second)
// equals a fold of the mock's items up to that instant. While the items
// are still arriving, late ones included, a walk never repeats a row and
// never skips one stored before it began.
func TestLedger_AgainstTheMocksTruth(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, d *bun.DB) {
		ctx := context.Background()
		seed := rand.Uint64()
		if v := os.Getenv("LEDGER_SEED"); v != "" {
			var err error
			seed, err = strconv.ParseUint(v, 10, 64)
			require.NoError(t, err)
		}
		t.Logf("seed %d (LEDGER_SEED=%[1]d repeats it)", seed)
		rng := rand.New(rand.NewPCG(seed, 19))
		now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		cfg := mockapi.DefaultConfig()
		cfg.Seed, cfg.Users, cfg.Transactions, cfg.History = int64(seed%1000), 12, 1500, 20*time.Minute
		cfg.WholeSeconds, cfg.LiveRate, cfg.MalformedRate, cfg.DuplicateRate, cfg.LateRate = true, 0, 0, 0, 0
		cfg.Now = func() time.Time { return now }
		m, err := mockapi.New(cfg)
		require.NoError(t, err)
		truth := m.Transactions()
		require.NotEmpty(t, truth)
		users := map[string]bool{}
		for _, tx := range truth {
			users[tx.UserID] = true
		}

		store := db.NewStore(d, db.Budget{})
		app, _, _ := MustNewApp(t, web.Config{Store: store})
		get := func(t *testing.T, target string, v any) *http.Response {
			t.Helper()
			resp, body := do(t, app, http.MethodGet, target)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", target, body)
			require.NoError(t, json.Unmarshal([]byte(body), v))
			return resp
		}
		walk := func(t *testing.T, user, query string, limit int, between func()) []ledgerRow {
			t.Helper()
			var all []ledgerRow
			target := fmt.Sprintf("/api/users/%s/transactions?limit=%d%s", url.PathEscape(user), limit, query)
			for range 10000 {
				var page []ledgerRow
				resp := get(t, target, &page)
				all = append(all, page...)
				next := resp.Header.Get("Link")
				if next == "" {
					return all
				}
				if between != nil {
					between()
				}
				target = strings.TrimSuffix(strings.TrimPrefix(next, "<"), `>; rel="next"`)
			}
			t.Fatal("the walk did not end")
			return nil
		}

		// The items arrive in shuffled batches, a tenth of them late
		// (after later ones), while walks run.
		pending := slices.Clone(truth)
		rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
		apply := func(n int) {
			n = min(n, len(pending))
			if n == 0 {
				return
			}
			_, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: pending[:n]}, now)
			require.NoError(t, err)
			pending = pending[n:]
			mustCatchUp(t, app)
		}
		apply(len(pending) / 2)
		_, err = db.EnsureSyncState(ctx, d, db.TransactionsStream, now, now)
		require.NoError(t, err)
		mustCatchUp(t, app)
		t.Run("StableWhileItemsArrive", func(t *testing.T) {
			for user := range users {
				before := walk(t, user, "", 1000, nil)
				got := walk(t, user, "", 1+rng.IntN(7), func() { apply(1 + rng.IntN(20)) })
				seen := map[string]bool{}
				for _, r := range got {
					require.False(t, seen[r.ID], "%s is on two pages of %s's ledger", r.ID, user)
					seen[r.ID] = true
				}
				for _, r := range before {
					require.True(t, seen[r.ID], "%s, stored before the walk began, is missing from %s's walk", r.ID, user)
				}
			}
		})
		apply(len(pending))

		// Settle a third of the payouts, each at its own instant after
		// its creation.
		settled := map[string]truthPayout{}
		for _, tx := range truth {
			if tx.Type != scorekeeper.TxPayout || rng.IntN(3) > 0 {
				continue
			}
			at := tx.CreatedAt.Add(time.Duration(rng.Int64N(int64(10 * time.Minute)))).Add(time.Duration(rng.IntN(1000)) * time.Microsecond)
			var p scorekeeper.Payout
			switch rng.IntN(3) {
			case 0:
				p, err = db.MarkPayoutPaid(ctx, d, tx.ID, "prov-"+tx.ID, at)
			case 1:
				p, err = db.MarkPayoutFailed(ctx, d, tx.ID, "account_closed", at)
			default:
				p, err = db.CancelPayout(ctx, d, tx.ID, "fraud", at)
			}
			require.NoError(t, err)
			settled[tx.ID] = truthPayout{status: p.Status, settledAt: at}
		}
		mustCatchUp(t, app)

		// Twice: the first time fills the cache, the second reads it.
		for round := range 2 {
			t.Run(fmt.Sprintf("Ledger%d", round), func(t *testing.T) {
				types := []scorekeeper.TxType{"", scorekeeper.TxEarned, scorekeeper.TxSpent, scorekeeper.TxPayout}
				for user := range users {
					typ := types[rng.IntN(len(types))]
					query := ""
					if typ != "" {
						query = "&type=" + string(typ)
					}
					var want []ledgerRow
					for i := len(truth) - 1; i >= 0; i-- {
						tx := truth[i]
						if tx.UserID != user || (typ != "" && tx.Type != typ) {
							continue
						}
						amount, err := strconv.ParseFloat(tx.Amount.String(), 64)
						require.NoError(t, err)
						r := ledgerRow{ID: tx.ID, Type: string(tx.Type), Amount: amount, CreatedAt: tx.CreatedAt}
						if tx.Type == scorekeeper.TxPayout {
							status := string(scorekeeper.PayoutRequested)
							if p, ok := settled[tx.ID]; ok {
								status = string(p.status)
							}
							r.Status = &status
						}
						want = append(want, r)
					}
					got := walk(t, user, query, 1+rng.IntN(40), nil)
					for i := range got {
						require.Equal(t, now, got[i].SyncedAt)
						got[i].SyncedAt = time.Time{}
					}
					require.Equal(t, want, got, "%s's ledger (type %q)", user, typ)
				}
			})
		}

		t.Run("SummaryAsOf", func(t *testing.T) {
			first, last := truth[0].CreatedAt, truth[len(truth)-1].CreatedAt
			for user := range users {
				for i := range 50 {
					var at time.Time
					switch i % 3 {
					case 0: // an item's own instant: it counts
						at = truth[rng.IntN(len(truth))].CreatedAt
					case 1: // a fraction of a second anywhere, settlements included
						at = first.Add(-time.Minute).Add(time.Duration(rng.Int64N(int64(last.Sub(first) + 12*time.Minute))))
					default: // just before an item's instant: it does not
						at = truth[rng.IntN(len(truth))].CreatedAt.Add(-time.Nanosecond)
					}
					if at.After(now) {
						at = now
					}
					want := foldTruth(user, truth, settled, at)
					resp, body := do(t, app, http.MethodGet, "/api/users/"+url.PathEscape(user)+"/summary?asOf="+url.QueryEscape(at.Format(time.RFC3339Nano)))
					require.Equal(t, http.StatusOK, resp.StatusCode, body)
					require.Equal(t, fmt.Sprintf(`{"userId":%q,"balance":%s,"earned":%s,"spent":%s,"payout":%s,"paidOut":%s}`,
						user, want.Balance(), want.Earned, want.Spent, want.Payout, want.PaidOut), body, "%s as of %s (served)", user, at)
					if i%5 == 0 {
						s, err := store.SummaryAsOf(ctx, user, at)
						require.NoError(t, err)
						require.Equal(t, want, s, "%s as of %s (the store)", user, at)
					}
				}
			}
		})
	})
}
