package web

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

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
