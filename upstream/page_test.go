package upstream_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
)

// Ensure a malformed item of any size is quarantined as a bounded record —
// its first MaxQuarantineExcerpt bytes, its size and the SHA-256 of all of
// it — and that a reason quoting a huge value is bounded too, while the
// rest of the page applies.
func TestFetchPage_HugeMalformedItem(t *testing.T) {
	huge := `{"id":"big","userId":"112233","createdAt":"2023-02-01T00:00:00Z","type":"earned","amount":1,"type2":"` +
		strings.Repeat("é", 5<<19) + `"}` // 5 MiB of "é", and then some
	hugeAmount := item("big-amount", "112233", "2023-02-01T00:00:00Z", "earned", `{"v":"`+strings.Repeat("9", 1<<20)+`"}`)
	items := []string{huge, hugeAmount}
	for i := range 998 {
		items = append(items, item(fmt.Sprintf("v%04d", i), "112233", "2023-02-01T00:00:10Z", "earned", "10"))
	}
	c := MustNewClient(t, 10*time.Second, serveBody(http.StatusOK, pageBody(onePage(len(items)), items...)))
	p, err := fetch(t, c)
	require.NoError(t, err)
	require.Equal(t, 999, len(p.Items), "the first item is valid: unknown fields are tolerated")
	require.Len(t, p.Quarantined, 1)

	// The item with a 1 MiB amount: its reason quotes the amount, cut.
	q := p.Quarantined[0]
	require.Equal(t, "big-amount", q.ItemID)
	require.True(t, q.Truncated)
	require.Equal(t, hugeAmount[:scorekeeper.MaxQuarantineExcerpt], q.Raw)
	require.EqualValues(t, len(hugeAmount), q.Size)
	sum := sha256.Sum256([]byte(hugeAmount))
	require.Equal(t, hex.EncodeToString(sum[:]), q.SHA256)
	// The amount's message quotes all of it (1 MiB); the reason is cut.
	require.True(t, strings.HasPrefix(q.Reason, `amount is invalid: amount "{\"v\":\"999`), q.Reason)
	require.True(t, strings.HasSuffix(q.Reason, "…"))
	require.LessOrEqual(t, len(q.Reason), scorekeeper.MaxQuarantineReason)

	// A 5 MiB malformed item: cut within its multi-byte runes.
	bad := strings.Replace(huge, `"amount":1`, `"amount":-1`, 1)
	c = MustNewClient(t, 10*time.Second, serveBody(http.StatusOK, pageBody(onePage(1), bad)))
	p, err = fetch(t, c)
	require.NoError(t, err)
	require.Len(t, p.Quarantined, 1)
	q = p.Quarantined[0]
	require.True(t, q.Truncated)
	require.LessOrEqual(t, len(q.Raw), scorekeeper.MaxQuarantineExcerpt)
	require.Greater(t, len(q.Raw), scorekeeper.MaxQuarantineExcerpt-4)
	require.True(t, strings.HasPrefix(bad, q.Raw), "the excerpt is the item's start, not mangled")
	require.EqualValues(t, len(bad), q.Size)
	sum = sha256.Sum256([]byte(bad))
	require.Equal(t, hex.EncodeToString(sum[:]), q.SHA256)
	require.Equal(t, "amount -1 must be greater than 0", q.Reason)
}

// Ensure a malformed item under MaxQuarantineExcerpt is kept whole, byte
// for byte, with its size and SHA-256, and the valid items beside it apply.
func TestFetchPage_SmallMalformedItemWhole(t *testing.T) {
	raw := "{ \"id\" : \"bad\",\n \"userId\":\"112233\", \"createdAt\":\"2023-02-01T00:00:00Z\", \"type\":\"earned\", \"amount\": 0.001, \"note\":\"<é>\" }"
	c := MustNewClient(t, time.Second, serveBody(http.StatusOK, pageBody(onePage(2), raw, item("v1", "112233", "2023-02-01T00:00:10Z", "earned", "10"))))
	p, err := fetch(t, c)
	require.NoError(t, err)
	require.Len(t, p.Items, 1)
	require.Len(t, p.Quarantined, 1)
	sum := sha256.Sum256([]byte(raw))
	require.Equal(t, scorekeeper.Quarantined{
		ItemID: "bad", Raw: raw, Size: int64(len(raw)), SHA256: hex.EncodeToString(sum[:]),
		Reason: `amount is invalid: amount "0.001" has more than 2 decimal places`,
	}, p.Quarantined[0])
}

// Ensure a malformed item served twice on one page is one distinct item
// and a duplicate, as a valid one is: a copy of it that took another
// item's place was counted as a distinct item, so the page looked whole
// and was continued by offset past the item it displaced (found by the
// whole-sync simulation, seed 72720817: a sorted listing with copies on
// pages and malformed items lost an item for good).
func TestFetchPage_MalformedCopyIsADuplicate(t *testing.T) {
	bad := `{"id":"bad","userId":"112233","createdAt":"2023-02-01T00:00:05Z","type":"spent"}`
	c := MustNewClient(t, time.Second, serveBody(http.StatusOK, pageBody(onePage(4),
		item("v1", "112233", "2023-02-01T00:00:01Z", "earned", "10"), bad, bad,
		item("v1", "112233", "2023-02-01T00:00:01Z", "earned", "10"))))
	p, err := fetch(t, c)
	require.NoError(t, err)
	require.Equal(t, 4, p.Entries)
	require.Len(t, p.Items, 1)
	require.Len(t, p.Quarantined, 1)
	require.Equal(t, 2, p.Duplicates, "a copy of a valid item and one of a malformed item")
}
