package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"scorekeeper"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/web"
)

// Sizes of TestPayouts_PagingAtScale.
const (
	// scaleUsers is how many users have payouts.
	scaleUsers = 25_000
	// scalePage is the page size walked, the API's default.
	scalePage = 1000
	// scaleBatch is how many transactions one ApplyBatch stores.
	scaleBatch = 1000
)

// scaleSeed is what TestPayouts_PagingAtScale stored: each user's
// not-failed payout sum and their total.
type scaleSeed struct {
	want  map[string]scorekeeper.Amount
	total scorekeeper.Amount
}

// Ensure walking GET /api/payouts?limit=1000 by its Link: rel="next"
// headers over 25,000 users on Postgres visits every user exactly once, in
// the requested order, with exact per-user sums adding up to the seeded
// total and X-Total-Count 25000 on every page, for sort=userId and
// sort=-payoutAmount.
func TestPayouts_PagingAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 25,000 users")
	}
	ctx := context.Background()
	d := dbtest.NewPostgres(t)
	app, _, _ := MustNewApp(t, web.Config{Store: db.NewStore(d, db.Budget{})})

	// Users are stored in shuffled order. Every fifth user has a second
	// payout, and every hundredth of those second payouts failed (so the
	// user is still listed, with the first payout only). Amounts take 40
	// values, so the amount order has long runs of ties across pages.
	rng := rand.New(rand.NewPCG(25_000, 1000))
	seed := scaleSeed{want: make(map[string]scorekeeper.Amount, scaleUsers)}
	var txs []scorekeeper.Transaction
	var toFail []string
	for _, i := range rng.Perm(scaleUsers) {
		user := fmt.Sprintf("u%05d", i)
		n := 1
		if i%5 == 0 {
			n = 2
		}
		for j := range n {
			a := scorekeeper.AmountFromCents(int64(1 + rng.IntN(40)*25))
			id := fmt.Sprintf("pay-%05d-%d", i, j)
			txs = append(txs, scorekeeper.Transaction{
				ID: id, UserID: user, CreatedAt: t0, Type: scorekeeper.TxPayout, Amount: a,
			})
			if j == 1 && i%500 == 0 {
				toFail = append(toFail, id)
				continue
			}
			seed.want[user] += a
			seed.total += a
		}
	}
	for start := 0; start < len(txs); start += scaleBatch {
		batch := txs[start:min(start+scaleBatch, len(txs))]
		res, err := db.ApplyBatch(ctx, d, db.Batch{Transactions: batch}, t0)
		require.NoError(t, err)
		require.Equal(t, len(batch), res.Inserted)
	}
	for _, id := range toFail {
		_, err := db.MarkPayoutFailed(ctx, d, id, "rejected by the provider", t0)
		require.NoError(t, err)
	}
	require.Len(t, seed.want, scaleUsers)

	// walk follows Link headers from the first page and returns every row.
	walk := func(t *testing.T, sort string) []payoutRow {
		t.Helper()
		var all []payoutRow
		next := "/api/payouts?limit=" + strconv.Itoa(scalePage) + "&sort=" + url.QueryEscape(sort)
		pages := 0
		for ; next != ""; pages++ {
			require.LessOrEqual(t, pages, scaleUsers/scalePage+1, "paging does not end")
			u, err := url.Parse(next)
			require.NoError(t, err)
			if pages > 0 {
				require.Equal(t, sort, u.Query().Get("sort"), "the link keeps the sort")
				require.Equal(t, strconv.Itoa(scalePage), u.Query().Get("limit"), "the link keeps the limit")
			}
			resp, body := do(t, app, http.MethodGet, u.RequestURI())
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			require.Equal(t, strconv.Itoa(scaleUsers), resp.Header.Get(web.HeaderTotalCount), "page %d", pages)
			var page []payoutRow
			require.NoError(t, json.Unmarshal([]byte(body), &page))
			all = append(all, page...)
			next = nextLink(t, resp)
			if next != "" {
				require.Len(t, page, scalePage, "only a full page links onwards")
			} else {
				require.Less(t, len(page), scalePage, "a full page links onwards")
			}
		}
		// 25 full pages, then the empty page the last full one links to.
		require.Equal(t, scaleUsers/scalePage+1, pages)
		return all
	}

	// check requires each user exactly once with their exact sum, and the
	// seeded total, compared as Amount (integer cents), never as floats.
	check := func(t *testing.T, all []payoutRow) {
		t.Helper()
		require.Len(t, all, scaleUsers)
		seen := make(map[string]bool, scaleUsers)
		var sum scorekeeper.Amount
		for _, r := range all {
			require.False(t, seen[r.UserID], "user %s listed twice", r.UserID)
			seen[r.UserID] = true
			want, ok := seed.want[r.UserID]
			require.True(t, ok, "user %s was not seeded", r.UserID)
			require.Equal(t, want, r.PayoutAmount, "user %s", r.UserID)
			sum += r.PayoutAmount
		}
		require.Equal(t, seed.total, sum)
	}

	t.Run("OKByUserID", func(t *testing.T) {
		all := walk(t, "userId")
		check(t, all)
		for i := 1; i < len(all); i++ {
			require.Less(t, all[i-1].UserID, all[i].UserID, "row %d", i)
		}
	})

	t.Run("OKByPayoutAmount", func(t *testing.T) {
		all := walk(t, "-payoutAmount")
		check(t, all)
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			require.True(t, a.PayoutAmount > b.PayoutAmount || a.PayoutAmount == b.PayoutAmount && a.UserID < b.UserID,
				"row %d: %s %s before %s %s", i, a.UserID, a.PayoutAmount, b.UserID, b.PayoutAmount)
		}
	})
}

// changingListing is the pending-payout listing of TestPayouts_PagingWhileDataChanges
// and the changes it makes through the store between pages.
type changingListing struct {
	t   *testing.T
	d   *bun.DB
	rng *rand.Rand
	n   int
	// requested holds each user's payouts not yet paid, by id.
	requested map[string]map[string]scorekeeper.Amount
	// changed lists users whose pending sum changed (or who left or
	// joined) since the walk started.
	changed map[string]bool
}

// pending is the user's current pending sum: what the listing must show.
func (l *changingListing) pending(user string) scorekeeper.Amount {
	var sum scorekeeper.Amount
	for _, a := range l.requested[user] {
		sum += a
	}
	return sum
}

// add stores a new payout request for user (a new user joins the listing).
func (l *changingListing) add(user string, a scorekeeper.Amount) {
	l.t.Helper()
	l.n++
	id := fmt.Sprintf("chg-%04d", l.n)
	_, err := db.ApplyBatch(context.Background(), l.d, db.Batch{Transactions: []scorekeeper.Transaction{
		{ID: id, UserID: user, CreatedAt: t0, Type: scorekeeper.TxPayout, Amount: a},
	}}, t0)
	require.NoError(l.t, err)
	if l.requested[user] == nil {
		l.requested[user] = map[string]scorekeeper.Amount{}
	}
	l.requested[user][id] = a
}

// pay confirms n of user's requested payouts (all when n < 0): the
// pending sum drops, and the user leaves the listing when none is left.
func (l *changingListing) pay(user string, n int) {
	l.t.Helper()
	ids := slices.Sorted(maps.Keys(l.requested[user]))
	if n >= 0 {
		ids = ids[:min(n, len(ids))]
	}
	for _, id := range ids {
		_, err := db.MarkPayoutPaid(context.Background(), l.d, id, "po-"+id, t0)
		require.NoError(l.t, err)
		delete(l.requested[user], id)
	}
}

// pick returns a random user of users that has not changed yet, or "".
func (l *changingListing) pick(users []string) string {
	var fresh []string
	for _, u := range users {
		if !l.changed[u] && l.pending(u) > 0 {
			fresh = append(fresh, u)
		}
	}
	if len(fresh) == 0 {
		return ""
	}
	return fresh[l.rng.IntN(len(fresh))]
}

// Ensure a walk of GET /api/payouts never fails and never returns a row
// twice while payouts are paid and requested between its pages, under
// both sorts: the user of the page's last row (the cursor) leaves the
// listing or gets a larger amount; users already listed leave or grow;
// users not listed yet leave, shrink or grow; new users join. Every row
// returned shows the user's sum as it was when its page was read, rows
// are in strict sort order across pages, and every user whose payouts
// did not change is returned.
func TestPayouts_PagingWhileDataChanges(t *testing.T) {
	for _, sort := range []string{"userId", "-payoutAmount"} {
		t.Run(sort, func(t *testing.T) {
			d := dbtest.NewPostgres(t)
			app, _, _ := MustNewApp(t, web.Config{Store: db.NewStore(d, db.Budget{})})
			l := &changingListing{t: t, d: d, rng: rand.New(rand.NewPCG(7, uint64(len(sort)))),
				requested: map[string]map[string]scorekeeper.Amount{}, changed: map[string]bool{}}
			var seeded []string
			for i := range 80 {
				u := fmt.Sprintf("u%03d", i)
				seeded = append(seeded, u)
				// Amounts from a small set, so the amount order has ties
				// that span pages; two payouts so one can be paid.
				l.add(u, scorekeeper.AmountFromCents(int64(100*(1+l.rng.IntN(4)))))
				l.add(u, scorekeeper.AmountFromCents(50))
			}

			var all []payoutRow
			seen := map[string]bool{}
			next := "/api/payouts?status=pending&limit=7&sort=" + url.QueryEscape(sort)
			for pages := 0; next != ""; pages++ {
				require.Less(t, pages, 40, "paging does not end")
				resp, body := do(t, app, http.MethodGet, next)
				require.Equal(t, http.StatusOK, resp.StatusCode, "page %d: %s", pages, body)
				var page []payoutRow
				require.NoError(t, json.Unmarshal([]byte(body), &page))
				for _, r := range page {
					require.False(t, seen[r.UserID], "page %d: user %s returned twice", pages, r.UserID)
					seen[r.UserID] = true
					require.Equal(t, l.pending(r.UserID), r.PayoutAmount, "page %d: user %s", pages, r.UserID)
				}
				all = append(all, page...)
				next = nextLink(t, resp)
				if next == "" {
					break
				}

				// Change the data before the next page.
				last := page[len(page)-1].UserID
				l.changed[last] = true
				if pages%2 == 0 {
					l.pay(last, -1) // the cursor's row leaves the listing
				} else {
					l.add(last, scorekeeper.AmountFromCents(125)) // … or moves
				}
				var before, ahead []string
				for _, u := range seeded {
					if seen[u] {
						before = append(before, u)
					} else {
						ahead = append(ahead, u)
					}
				}
				if u := l.pick(before); u != "" {
					l.changed[u] = true
					if l.rng.IntN(2) == 0 {
						l.pay(u, -1)
					} else {
						l.add(u, scorekeeper.AmountFromCents(300))
					}
				}
				if u := l.pick(ahead); u != "" {
					l.changed[u] = true
					l.pay(u, -1)
				}
				if u := l.pick(ahead); u != "" {
					l.changed[u] = true
					l.pay(u, 1) // shrinks by one payout
				}
				if u := l.pick(ahead); u != "" {
					l.changed[u] = true
					l.add(u, scorekeeper.AmountFromCents(75))
				}
				joined := fmt.Sprintf("new%02d", pages)
				l.changed[joined] = true
				l.add(joined, scorekeeper.AmountFromCents(int64(25*(1+l.rng.IntN(20)))))
			}

			for i := 1; i < len(all); i++ {
				a, b := all[i-1], all[i]
				if sort == "userId" {
					require.Less(t, a.UserID, b.UserID, "row %d", i)
				} else {
					require.True(t, a.PayoutAmount > b.PayoutAmount || a.PayoutAmount == b.PayoutAmount && a.UserID < b.UserID,
						"row %d: %s %s before %s %s", i, a.UserID, a.PayoutAmount, b.UserID, b.PayoutAmount)
				}
			}
			unchanged := 0
			for _, u := range seeded {
				if !l.changed[u] {
					unchanged++
					require.True(t, seen[u], "user %s did not change and was not returned", u)
				}
			}
			require.Greater(t, len(l.changed), 30, "the walk changed enough to matter")
			require.Greater(t, unchanged, 20)
		})
	}
}

// Ensure next-page links are relative unless PUBLIC_BASE_URL is set, and
// absolute on it when it is, and never carry a host or scheme the client
// sent (Host, X-Forwarded-Host, X-Forwarded-Proto), on both listings.
func TestLinks_NotFromClientHeaders(t *testing.T) {
	store := newFakeStore().seed()
	store.quarantine(t0, scorekeeper.Quarantined{Raw: "x1", Reason: "r"}, scorekeeper.Quarantined{Raw: "x2", Reason: "r"})
	relative, _, _ := MustNewApp(t, web.Config{Store: store})
	absolute, _, _ := MustNewApp(t, web.Config{Store: store, PublicBaseURL: "https://api.example.com/"})

	for _, path := range []string{"/api/payouts", "/api/quarantine"} {
		for name, c := range map[string]struct {
			app  *fiber.App
			want string
		}{
			"Relative": {relative, "</api/"},
			"Absolute": {absolute, "<https://api.example.com/api/"},
		} {
			t.Run(name+path, func(t *testing.T) {
				req := httptest.NewRequest(http.MethodGet, path+"?limit=1", nil)
				req.Host = "evil-host.example"
				req.Header.Set("X-Forwarded-Host", "evil-forwarded.example")
				req.Header.Set("X-Forwarded-Proto", "gopher")
				resp, err := c.app.Test(req, -1)
				require.NoError(t, err)
				defer resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				link := resp.Header.Get("Link")
				require.True(t, strings.HasPrefix(link, c.want+strings.TrimPrefix(path, "/api/")+"?"), "Link: %s", link)
				require.NotContains(t, link, "evil")
				require.NotContains(t, link, "gopher")
				require.NotContains(t, link, "//api/", "the base's trailing slash is trimmed")
				// The relative link resolves against the request URL to
				// the next page on the same server.
				resp2, body := do(t, c.app, http.MethodGet, strings.TrimPrefix(nextLink(t, resp), "https://api.example.com"))
				require.Equal(t, http.StatusOK, resp2.StatusCode, body)
			})
		}
	}
}
