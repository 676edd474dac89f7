package activities

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/syncplan"
)

// maxActivityPayload is the design's bound on any activity payload.
const maxActivityPayload = 256 << 10

// Ensure jsonLen is the length encoding/json gives a string, escapes and
// all: HTML characters, control characters, quotes, invalid UTF-8 and the
// line separators JavaScript cannot take raw.
func TestJSONLen(t *testing.T) {
	alphabet := []string{"a", "é", "€", "😀", "<", ">", "&", `"`, `\`, "\n", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", "\xff", "\xe2\x82", "\u2028", "\u2029", "\uFFFD", " "}
	check := func(s string) {
		j, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, len(j)-2, jsonLen(s), "%q", s)
	}
	for _, a := range alphabet {
		check(a)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(20) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		check(b.String())
	}
}

// Ensure cutJSON keeps the longest start of a string that encodes within
// the bound, never splitting a rune or an escape.
func TestCutJSON(t *testing.T) {
	for _, tt := range []struct {
		s    string
		max  int
		want string
	}{
		{"abc", 3, "abc"},
		{"abc", 2, "ab"},
		{"a<b", 6, "a"},
		{"a<b", 7, "a<"},
		{"aé", 2, "a"},
		{"aé", 3, "aé"},
		{`a"b`, 2, "a"},
		{"abc", 0, ""},
	} {
		require.Equal(t, tt.want, cutJSON(tt.s, tt.max), "%q %d", tt.s, tt.max)
	}
	require.Equal(t, "abcd…", cutReasonJSON("abcdefgh", 7))
	require.Equal(t, "abcdefg", cutReasonJSON("abcdefg", 7))
}

// validPage returns a FetchPageResult of n valid items with UUID ids, as
// FetchPage builds it.
func validPage(n int) FetchPageResult {
	at := time.Date(2026, 11, 28, 12, 0, 0, 123_000_000, time.UTC)
	out := FetchPageResult{
		Items: make([]Item, n),
		Page: syncplan.Page{
			Request: syncplan.Request{Kind: syncplan.Fresh, Start: at.Add(-time.Hour), End: at, EndAtFetch: true, Page: 1, Limit: 1000},
			At:      at, Total: 1000, TotalPages: 1, Count: 1000, CreatedAt: make([]time.Time, n),
		},
	}
	for i := range n {
		out.Items[i] = Item{
			ID: fmt.Sprintf("0b6f1c52-4a8e-4b43-9f0e-%012d", i), UserID: fmt.Sprintf("user_%06d", i%5000),
			CreatedAt: at.Add(time.Duration(i) * time.Millisecond), Type: scorekeeper.TxEarned, Amount: scorekeeper.AmountFromCents(int64(1 + i)),
		}
		out.Page.CreatedAt[i] = out.Items[i].CreatedAt
	}
	return out
}

// malformed returns the record upstream makes of a malformed item of
// size bytes, as decodeItem does, and the item.
func malformed(i, size int, fill string) (scorekeeper.Quarantined, []byte) {
	head := fmt.Sprintf(`{"id":"7f1c5e2a-0000-4000-8000-%012d","userId":"445566","createdAt":"2026-11-28T12:00:00Z","type":"gift","amount":1,"note":"`, i)
	raw := []byte(head + strings.Repeat(fill, (size-len(head)-2)/len(fill)) + `"}`)
	return scorekeeper.NewQuarantined(fmt.Sprintf("7f1c5e2a-0000-4000-8000-%012d", i), raw, `type "gift" is unknown: want earned, spent or payout`), raw
}

// requirePayloadsBounded requires out, and the ApplyPageInput that carries
// it, to encode (as Temporal's JSON payload converter does) under the
// design's 256 KiB, and returns the size of the first.
func requirePayloadsBounded(t *testing.T, out FetchPageResult) int {
	t.Helper()
	b, err := json.Marshal(out)
	require.NoError(t, err)
	require.Less(t, len(b), maxActivityPayload, "FetchPageResult")
	plan := PlanResult{Request: out.Page.Request, Version: 1 << 40, SyncedThrough: out.Page.At}
	in, err := json.Marshal(ApplyPageInput{Plan: plan, Page: out})
	require.NoError(t, err)
	require.Less(t, len(in), maxActivityPayload, "ApplyPageInput")
	return len(b)
}

// requireRecordKept requires b to be q as far as a payload can keep it: id,
// size, hash and at least a floor of the reason, and a start of the excerpt.
func requireRecordKept(t *testing.T, q scorekeeper.Quarantined, b BadItem) {
	t.Helper()
	require.Equal(t, q.ItemID, b.ItemID)
	require.Equal(t, q.Size, b.Size)
	require.Equal(t, q.SHA256, b.SHA256)
	require.True(t, strings.HasPrefix(q.Raw, b.Raw))
	require.Equal(t, q.Truncated || len(b.Raw) < len(q.Raw), b.Truncated)
	require.GreaterOrEqual(t, jsonLen(b.Reason), min(minBadReason-len("…"), jsonLen(q.Reason)))
}

// Ensure a page's quarantined records fit one activity payload whatever the
// items' sizes: the records of 1000 malformed items of 100 KiB each, of a
// 5 MB item among 999 valid ones, and of many HTML-heavy items that JSON
// escapes six-fold, each keeping its id, size, hash and a reason.
func TestBadItems_PayloadBounded(t *testing.T) {
	t.Run("OKThousandItemsOf100KiB", func(t *testing.T) {
		out := validPage(0)
		qs := make([]scorekeeper.Quarantined, 1000)
		for i := range qs {
			qs[i], _ = malformed(i, 100<<10, "x")
		}
		out.Quarantined = badItems(out, qs)
		n := requirePayloadsBounded(t, out)
		require.Len(t, out.Quarantined, 1000)
		for i, b := range out.Quarantined {
			requireRecordKept(t, qs[i], b)
		}
		// 1000 floors take the whole budget: no excerpt is left.
		t.Logf("FetchPageResult of 1000 malformed 100 KiB items: %d bytes (first excerpt %d bytes)", n, len(out.Quarantined[0].Raw))
	})

	t.Run("OKOne5MBItemAmong999Valid", func(t *testing.T) {
		out := validPage(999)
		q, raw := malformed(0, 5<<20, "é")
		require.EqualValues(t, len(raw), q.Size)
		out.Quarantined = badItems(out, []scorekeeper.Quarantined{q})
		n := requirePayloadsBounded(t, out)
		require.Len(t, out.Quarantined, 1)
		require.Equal(t, BadItem{ItemID: q.ItemID, Raw: q.Raw, Reason: q.Reason, Size: q.Size, SHA256: q.SHA256, Truncated: true}, out.Quarantined[0],
			"one record fits whole: a 4 KiB excerpt")
		t.Logf("FetchPageResult of 999 valid items and a 5 MB malformed one: %d bytes", n)
	})

	t.Run("OKEscapedExcerpts", func(t *testing.T) {
		// 4 KiB of "<" is 24 KiB of JSON: the budget counts JSON, not bytes.
		for _, valid := range []int{0, 500, 900, 980, 999} {
			out := validPage(valid)
			qs := make([]scorekeeper.Quarantined, 1000-valid)
			for i := range qs {
				qs[i], _ = malformed(i, 8<<10, "<&>")
			}
			out.Quarantined = badItems(out, qs)
			n := requirePayloadsBounded(t, out)
			for i, b := range out.Quarantined {
				requireRecordKept(t, qs[i], b)
			}
			t.Logf("%d valid, %d malformed 8 KiB items of \"<&>\": %d bytes, first excerpt %d bytes", valid, len(qs), n, len(out.Quarantined[0].Raw))
		}
	})

	t.Run("OKSmallItemsWhole", func(t *testing.T) {
		// A few small malformed items travel as they came.
		out := validPage(990)
		qs := make([]scorekeeper.Quarantined, 10)
		for i := range qs {
			qs[i], _ = malformed(i, 300, "y")
		}
		out.Quarantined = badItems(out, qs)
		requirePayloadsBounded(t, out)
		for i, b := range out.Quarantined {
			require.Equal(t, BadItem{ItemID: qs[i].ItemID, Raw: qs[i].Raw, Reason: qs[i].Reason, Size: qs[i].Size, SHA256: qs[i].SHA256}, b)
		}
	})

	t.Run("OKRandomPages", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		fills := []string{"x", "é", "<", "\n", "😀"}
		for range 30 {
			valid := rng.IntN(1001)
			out := validPage(valid)
			qs := make([]scorekeeper.Quarantined, 1000-valid)
			for i := range qs {
				qs[i], _ = malformed(i, 200+rng.IntN(20<<10), fills[rng.IntN(len(fills))])
				if rng.IntN(4) == 0 {
					qs[i].Reason = scorekeeper.CutReason(strings.Repeat("reason <quoted> ", 100), scorekeeper.MaxQuarantineReason)
				}
			}
			out.Quarantined = badItems(out, qs)
			requirePayloadsBounded(t, out)
			for i, b := range out.Quarantined {
				requireRecordKept(t, qs[i], b)
			}
		}
	})

	t.Run("OKNone", func(t *testing.T) {
		require.Nil(t, badItems(validPage(3), nil))
	})
}
