package upstream

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

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
	bad := `{"id":"x","userId":"112233","createdAt":"2023-02-01T00:00:01.5Z","type":"gift","amount":1}`
	const t1, t2, t3 = "2023-02-01T00:00:01.5Z", "2023-02-01T00:00:02.5Z", "2023-02-01T00:00:03.5Z"
	long := make([]string, MaxTie+1)
	for i := range long {
		long[i] = at(fmt.Sprint("l", i), t3)
	}
	for _, tc := range []struct {
		name       string
		items      []string
		head, tail []string
	}{
		{"OneEach", []string{at("a", t1), at("b", t2), at("c", t3)}, []string{"a"}, []string{"c"}},
		{"Runs", []string{at("a", t1), at("b", t1), at("c", t2), at("d", t3), at("e", t3)}, []string{"a", "b"}, []string{"d", "e"}},
		// A malformed entry next to a run may belong to it.
		{"MalformedNextToRuns", []string{at("a", t1), bad, at("c", t2), bad, at("e", t3)}, nil, nil},
		{"MalformedInside", []string{at("a", t1), at("b", t2), bad, at("c", t2), at("e", t3)}, []string{"a"}, []string{"e"}},
		{"MalformedFirst", []string{bad, at("b", t2), at("c", t3)}, nil, []string{"c"}},
		{"MalformedLast", []string{at("a", t1), at("b", t2), bad}, []string{"a"}, nil},
		{"CopyInRun", []string{at("a", t1), at("a", t1), at("c", t2), at("d", t3), at("d", t3)}, nil, nil},
		{"WholePageOneTie", []string{at("a", t1), at("b", t1)}, nil, nil},
		{"LongerThanMaxTie", append([]string{at("a", t1)}, long...), []string{"a"}, nil},
		{"Empty", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"items":[` + strings.Join(tc.items, ",") + `],"meta":{"totalItems":9,"totalPages":1,"currentPage":1}}`
			p, err := decodePage([]byte(body))
			require.NoError(t, err)
			require.Equal(t, tc.head, p.HeadTie, "head tie")
			require.Equal(t, tc.tail, p.TailTie, "tail tie")
		})
	}
}
