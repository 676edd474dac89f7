package activities_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/db"
	"scorekeeper/syncplan"
)

// maxActivityPayload is the design's bound on any activity payload.
const maxActivityPayload = 256 << 10

// serveUpstreamPage serves one page of raw item texts, whatever is asked.
func serveUpstreamPage(t *testing.T, items []string) string {
	t.Helper()
	body := `{"items":[` + strings.Join(items, ",") +
		fmt.Sprintf(`],"meta":{"totalItems":%d,"itemCount":%d,"itemsPerPage":1000,"totalPages":1,"currentPage":1}}`, len(items), len(items))
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// requirePayloadsBounded requires the page FetchPage returned, and the
// ApplyPage input that carries it, to encode (JSON, as Temporal's payload
// converter does) under 256 KiB, and returns their sizes.
func requirePayloadsBounded(t *testing.T, plan activities.PlanResult, page activities.FetchPageResult) (int, int) {
	t.Helper()
	out, err := json.Marshal(page)
	require.NoError(t, err)
	require.Less(t, len(out), maxActivityPayload, "FetchPage result")
	in, err := json.Marshal(activities.ApplyPageInput{Plan: plan, Page: page})
	require.NoError(t, err)
	require.Less(t, len(in), maxActivityPayload, "ApplyPage input")
	return len(out), len(in)
}

// Ensure a malformed item of 5 MB among 999 valid ones neither stalls the
// page nor travels whole: FetchPage's result and ApplyPage's input stay
// under 256 KiB, the item is quarantined as an excerpt with its full size
// and the SHA-256 of all of it, the valid items are stored, and the same
// item seen again is the same row.
func TestFetchApply_HugeMalformedItem(t *testing.T) {
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	at := start.Add(time.Minute).Format(time.RFC3339)
	huge := `{"id":"huge-1","userId":"445566","createdAt":"` + at + `","type":"earned","amount":-1,"note":"` +
		strings.Repeat("é<", 5<<20/3) + `"}`
	require.Greater(t, len(huge), 5_000_000)
	items := []string{huge}
	for i := range 999 {
		items = append(items, fmt.Sprintf(`{"id":"0b6f1c52-4a8e-4b43-9f0e-%012d","userId":"user_%04d","createdAt":%q,"type":"earned","amount":1.5}`, i, i%50, at))
	}
	acts, env := newSyncActivities(t, nil, serveUpstreamPage(t, items), 100)
	acts.Sync.Start = start

	p := run[activities.PlanResult](t, env, acts.PlanPage, activities.PlanInput{Holder: testWorkflowID})
	require.Equal(t, syncplan.Fresh, p.Request.Kind)
	page := run[activities.FetchPageResult](t, env, acts.FetchPage, activities.FetchPageInput{Plan: p})
	outSize, inSize := requirePayloadsBounded(t, p, page)
	t.Logf("FetchPage result %d bytes, ApplyPage input %d bytes", outSize, inSize)
	require.Len(t, page.Items, 999)
	require.Len(t, page.Quarantined, 1)
	b := page.Quarantined[0]
	require.Equal(t, "huge-1", b.ItemID)
	require.True(t, b.Truncated)
	require.EqualValues(t, len(huge), b.Size)
	require.Equal(t, sha256Hex(huge), b.SHA256)
	require.LessOrEqual(t, len(b.Raw), scorekeeper.MaxQuarantineExcerpt)
	require.Greater(t, len(b.Raw), scorekeeper.MaxQuarantineExcerpt-4, "one malformed item keeps its whole excerpt")
	require.True(t, strings.HasPrefix(huge, b.Raw))
	require.Equal(t, "amount -1 must be greater than 0", b.Reason)

	r := run[activities.ApplyPageResult](t, env, acts.ApplyPage, activities.ApplyPageInput{Plan: p, Page: page})
	require.Equal(t, 999, r.Inserted)
	require.Equal(t, 1, r.Quarantined)
	ctx := context.Background()
	stored, total, err := db.ListQuarantinePage(ctx, acts.Store.DB(), scorekeeper.QuarantineFilter{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, 1, total)
	require.Equal(t, scorekeeper.Quarantined{ItemID: "huge-1", Raw: b.Raw, Truncated: true, Size: int64(len(huge)), SHA256: sha256Hex(huge), Reason: b.Reason}, stored[0].Quarantined)

	// The same page again (a retry, an overlap re-scan): the same row.
	page = run[activities.FetchPageResult](t, env, acts.FetchPage, activities.FetchPageInput{Plan: p})
	r = run[activities.ApplyPageResult](t, env, acts.ApplyPage, activities.ApplyPageInput{Plan: p, Page: page})
	require.Equal(t, 0, r.Quarantined)
	require.Equal(t, 0, r.Inserted)
	n, err := db.QuarantineCount(ctx, acts.Store.DB())
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

// Ensure a page of 1000 malformed items of 30 KiB each (30 MB, about what
// the client reads at most) fits one payload too: every record keeps the
// item's id, size and hash and a reason, and all 1000 are stored.
func TestFetchApply_ThousandMalformedItems(t *testing.T) {
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	at := start.Add(time.Minute).Format(time.RFC3339)
	items := make([]string, 1000)
	want := map[string]bool{}
	for i := range items {
		head := fmt.Sprintf(`{"id":"7f1c5e2a-0000-4000-8000-%012d","userId":"445566","createdAt":%q,"type":"gift","amount":1,"note":"`, i, at)
		items[i] = head + strings.Repeat(string(rune('a'+i%26)), 30<<10-len(head)-2) + `"}`
		want[sha256Hex(items[i])] = true
	}
	acts, env := newSyncActivities(t, nil, serveUpstreamPage(t, items), 100)
	acts.Sync.Start = start

	p := run[activities.PlanResult](t, env, acts.PlanPage, activities.PlanInput{Holder: testWorkflowID})
	page := run[activities.FetchPageResult](t, env, acts.FetchPage, activities.FetchPageInput{Plan: p})
	outSize, inSize := requirePayloadsBounded(t, p, page)
	t.Logf("FetchPage result %d bytes, ApplyPage input %d bytes", outSize, inSize)
	require.Empty(t, page.Items)
	require.Len(t, page.Quarantined, 1000)
	for i, b := range page.Quarantined {
		require.Equal(t, fmt.Sprintf("7f1c5e2a-0000-4000-8000-%012d", i), b.ItemID)
		require.EqualValues(t, 30<<10, b.Size)
		require.Equal(t, sha256Hex(items[i]), b.SHA256)
		require.True(t, b.Truncated)
		require.True(t, strings.HasPrefix(items[i], b.Raw))
		require.True(t, strings.HasPrefix(b.Reason, `type "gift" is unknown`), b.Reason)
	}

	r := run[activities.ApplyPageResult](t, env, acts.ApplyPage, activities.ApplyPageInput{Plan: p, Page: page})
	require.Equal(t, 1000, r.Quarantined)
	stored, total, err := db.ListQuarantinePage(context.Background(), acts.Store.DB(), scorekeeper.QuarantineFilter{Limit: 1000})
	require.NoError(t, err)
	require.Equal(t, 1000, total)
	for _, q := range stored {
		require.True(t, want[q.SHA256], "stored under the hash of the whole item")
		require.EqualValues(t, 30<<10, q.Size)
	}
}
