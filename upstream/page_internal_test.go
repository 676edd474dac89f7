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
