package upstream

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
)

// Ensure decoding a page of 1000 malformed items of 100 KiB each (100 MB,
// beyond what the client reads, so decoded here directly) keeps 1000
// bounded records, none of which holds its item: each has an excerpt of at
// most MaxQuarantineExcerpt bytes, the item's size and its SHA-256.
func TestDecodePage_ManyBigMalformedItems(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 100 MB")
	}
	const n, size = 1000, 100 << 10
	var b strings.Builder
	b.Grow(n*size + 200)
	b.WriteString(`{"items":[`)
	sums := make([]string, n)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		head := fmt.Sprintf(`{"id":"bad-%04d","userId":"112233","createdAt":"2023-02-01T00:00:00Z","type":"gift","amount":1,"note":"`, i)
		it := head + strings.Repeat(string(rune('a'+i%26)), size-len(head)-2) + `"}`
		sum := sha256.Sum256([]byte(it))
		sums[i] = hex.EncodeToString(sum[:])
		b.WriteString(it)
	}
	b.WriteString(`],"meta":{"totalItems":1000,"itemCount":1000,"itemsPerPage":1000,"totalPages":1,"currentPage":1}}`)

	p, err := decodePage([]byte(b.String()))
	require.NoError(t, err)
	require.Empty(t, p.Items)
	require.Len(t, p.Quarantined, n)
	held := 0
	for i, q := range p.Quarantined {
		require.Equal(t, fmt.Sprintf("bad-%04d", i), q.ItemID)
		require.True(t, q.Truncated)
		require.Len(t, q.Raw, scorekeeper.MaxQuarantineExcerpt)
		require.EqualValues(t, size, q.Size)
		require.Equal(t, sums[i], q.SHA256)
		require.Equal(t, `type "gift" is unknown: want earned, spent or payout`, q.Reason)
		held += len(q.Raw) + len(q.Reason) + len(q.SHA256) + len(q.ItemID)
	}
	require.Less(t, held, n*(scorekeeper.MaxQuarantineExcerpt+200), "the records hold excerpts, not items")
}

// Ensure a page's leading and trailing ties are recorded only when known
// whole: every entry of the run valid and distinct, the run ended on the
// page, and no longer than MaxTie.
func TestDecodePage_Ties(t *testing.T) {
	at := func(id, ts string) string {
		return fmt.Sprintf(`{"id":%q,"userId":"112233","createdAt":%q,"type":"earned","amount":1}`, id, ts)
	}
	bad := `{"id":"x","userId":"112233","createdAt":"2023-02-01T00:00:01Z","type":"gift","amount":1}`
	bad2 := `{"id":"y","userId":"112233","createdAt":"2023-02-01T00:00:01Z","type":"gift","amount":1}`
	bad3 := `{"id":"w","userId":"112233","createdAt":"2023-02-01T00:00:03Z","type":"gift","amount":1}`
	// No createdAt: the instant is unknown.
	unknown := `{"id":"z","userId":"112233","type":"earned","amount":1}`
	unknown2 := `{"id":"v","userId":"112233","type":"earned","amount":1}`
	const t1, t2, t3, t4 = "2023-02-01T00:00:01Z", "2023-02-01T00:00:02Z", "2023-02-01T00:00:03Z", "2023-02-01T00:00:04Z"
	for _, tc := range []struct {
		name  string
		items []string
		stray bool
		after string
	}{
		{"None", []string{at("a", t1), at("b", t2), at("c", t3)}, false, ""},
		{"RightAfterItself", []string{at("a", t1), at("a", t1), at("c", t3)}, false, ""},
		// In a tie served in no order, as a row listed twice is.
		{"AmongItsOwnInstant", []string{at("a", t1), at("b", t1), at("a", t1), at("d", t4)}, false, ""},
		{"InPlaceOfAnother", []string{at("a", t1), at("b", t2), at("a", t1), at("d", t4)}, true, t2},
		{"Last", []string{at("a", t1), at("b", t2), at("c", t3), at("a", t1)}, true, t3},
		{"FirstOfTwo", []string{at("a", t1), at("b", t2), at("a", t1), at("d", t4), at("b", t2)}, true, t2},
		// A malformed entry's instant is its createdAt, where it can be
		// read.
		{"MalformedCopy", []string{bad, at("b", t2), bad, at("d", t4)}, true, t2},
		{"MalformedCopyAmongItsInstant", []string{bad, at("a", t1), bad, at("d", t4)}, false, ""},
		{"MalformedRightAfterItself", []string{bad, bad, at("c", t3)}, false, ""},
		{"MalformedOfAnotherInstantBetween", []string{at("a", t1), at("b", t1), bad3, at("a", t1), at("d", t4)}, true, t1},
		{"MalformedOfItsInstantBetween", []string{at("a", t1), bad2, at("a", t1), at("d", t4)}, false, ""},
		// Where it cannot, a copy of it or after it may sit in any
		// item's place.
		{"UnknownCopy", []string{unknown, at("b", t2), unknown, at("d", t4)}, true, t2},
		{"UnknownCopyBeforeAnyValidItem", []string{unknown, unknown2, unknown, at("d", t4)}, true, ""},
		{"UnknownBetween", []string{at("a", t1), unknown2, at("a", t1)}, true, t1},
		{"UnknownRightAfterItself", []string{unknown, unknown, at("c", t3)}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"items":[` + strings.Join(tc.items, ",") + `],"meta":{"totalItems":9,"totalPages":1,"currentPage":1}}`
			p, err := decodePage([]byte(body))
			require.NoError(t, err)
			require.Equal(t, tc.stray, p.Stray)
			// Every copy but one right after its original is apart.
			require.Equal(t, tc.name != "None" && !strings.HasSuffix(tc.name, "RightAfterItself"), p.Apart)
			// The Unknown rows are those where the copy's instant, or the
			// entry's before it, is unknown.
			require.Equal(t, tc.stray && strings.HasPrefix(tc.name, "Unknown"), p.StrayUnknown)
			if tc.after == "" {
				require.True(t, p.StrayAfter.IsZero(), "%s", p.StrayAfter)
				return
			}
			require.NotZero(t, p.Duplicates)
			want, err := time.Parse(time.RFC3339, tc.after)
			require.NoError(t, err)
			require.True(t, want.Equal(p.StrayAfter), "%s, want %s", p.StrayAfter, want)
		})
	}
}
