package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/db"
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
	app, d, _ := MustNewApp(t, web.Config{})

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
