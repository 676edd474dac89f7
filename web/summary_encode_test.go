package web

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
)

// Ensure the hand-written summary encoding is byte for byte what
// encoding/json produces, for amounts of every shape (zero, whole, one and
// two decimals, negative, extremes), and defers to it for ids that need
// escaping.
func TestAppendSummaryJSON(t *testing.T) {
	edges := []int64{0, 1, 5, 10, 99, 100, 105, 110, 1920, -1, -10, -105, -1920, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	rng := rand.New(rand.NewPCG(1, 2))
	amount := func(i int) scorekeeper.Amount {
		if i < len(edges) {
			return scorekeeper.AmountFromCents(edges[i])
		}
		switch rng.IntN(3) {
		case 0:
			return scorekeeper.AmountFromCents(rng.Int64N(100_000) - 50_000)
		case 1:
			return scorekeeper.AmountFromCents(int64(rng.Uint64()))
		}
		return scorekeeper.AmountFromCents(rng.Int64N(1000) * 10)
	}
	for i := range 10_000 {
		r := summaryResponse{UserID: "u-1_Z", Balance: amount(i), Earned: amount(i + 1), Spent: amount(i + 2), Payout: amount(i + 3), PaidOut: amount(i + 4)}
		got, ok := appendSummaryJSON(nil, r)
		require.True(t, ok)
		want, err := json.Marshal(r)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
	for _, id := range []string{`a"b`, `a\b`, "a<b", "a>b", "a&b", "a\nb", "é", "\x7f"} {
		_, ok := appendSummaryJSON(nil, summaryResponse{UserID: id})
		require.False(t, ok, "%q needs encoding/json", id)
	}
}

// Ensure the hand-written ledger encoding is byte for byte what
// encoding/json produces for the same rows (every type, payouts of every
// status, instants with and without fractions, before 1970 and in other
// zones, amounts of every shape), and defers to it for ids that need
// escaping.
func TestAppendLedgerJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	types := []scorekeeper.TxType{scorekeeper.TxEarned, scorekeeper.TxSpent, scorekeeper.TxPayout}
	statuses := append([]scorekeeper.PayoutStatus{""}, scorekeeper.PayoutStatuses...)
	zone := time.FixedZone("x", -7*3600)
	instant := func() time.Time {
		t := time.Unix(rng.Int64N(4_000_000_000)-1_000_000_000, 0)
		switch rng.IntN(4) {
		case 0:
			t = t.Add(time.Duration(rng.IntN(1_000_000)) * time.Microsecond)
		case 1:
			t = t.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		case 2:
			t = t.In(zone)
		}
		return t
	}
	for n := range 300 {
		es := make([]scorekeeper.LedgerEntry, n%12)
		for i := range es {
			typ := types[rng.IntN(3)]
			var status scorekeeper.PayoutStatus
			if typ == scorekeeper.TxPayout {
				status = statuses[1+rng.IntN(len(statuses)-1)]
			}
			es[i] = scorekeeper.LedgerEntry{
				Transaction: scorekeeper.Transaction{ID: fmt.Sprintf("tx-%d_%X", rng.IntN(1e6), rng.IntN(1e6)), UserID: "u",
					CreatedAt: instant(), Type: typ, Amount: scorekeeper.AmountFromCents(rng.Int64N(1e9) * []int64{1, 10, 100}[rng.IntN(3)])},
				SyncedAt: instant(), Status: status,
			}
		}
		got, ok := appendLedgerJSON(nil, es)
		require.True(t, ok)
		want, err := json.Marshal(toLedgerResponses(es))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
	for _, id := range []string{`a"b`, `a\b`, "a<b", "a>b", "a&b", "a\nb", "é", "\x7f"} {
		_, ok := appendLedgerJSON(nil, []scorekeeper.LedgerEntry{{Transaction: scorekeeper.Transaction{ID: id, Type: scorekeeper.TxEarned}}})
		require.False(t, ok, "%q needs encoding/json", id)
	}
}

// Ensure appendMicros writes what time.Time's RFC 3339 formatter does, at
// the edges of days, months, leap years and the fast path's range, and at
// random instants of every fraction length.
func TestAppendMicros(t *testing.T) {
	format := func(us int64) string { return time.UnixMicro(us).UTC().Format(time.RFC3339Nano) }
	edges := []int64{0, 1, 10, 999_999, 1_000_000, -1, -1_000_001, maxFastMicros - 1, maxFastMicros, math.MaxInt64, math.MinInt64}
	for _, day := range []string{"2000-02-29", "2000-03-01", "1900-03-01", "2100-02-28", "2100-03-01", "2024-12-31", "2023-01-01", "1970-01-01", "9999-12-31"} {
		d, err := time.Parse(time.DateOnly, day)
		require.NoError(t, err)
		edges = append(edges, d.UnixMicro(), d.UnixMicro()-1, d.Add(24*time.Hour-time.Microsecond).UnixMicro())
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200_000 {
		us := rng.Int64N(maxFastMicros)
		edges = append(edges, us, us/1e6*1e6, us/1e3*1e3, us/1e5*1e5)
	}
	for _, us := range edges {
		require.Equal(t, format(us), string(appendMicros([]byte("x"), us))[1:], "%d", us)
	}
}
