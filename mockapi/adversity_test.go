package mockapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
)

// fetchPages fetches pages 1..totalPages of a window once each, in order.
func fetchPages(tb testing.TB, base string, from, to time.Time, limit int) []listResponse {
	tb.Helper()
	first, _ := MustPage(tb, base, from, to, 1, limit)
	pages := []listResponse{first}
	for p := 2; p <= first.Meta.TotalPages; p++ {
		lr, _ := MustPage(tb, base, from, to, p, limit)
		pages = append(pages, lr)
	}
	return pages
}

// createdAtOf returns a served item's createdAt.
func createdAtOf(tb testing.TB, raw json.RawMessage) time.Time {
	tb.Helper()
	var w wireItem
	require.NoError(tb, json.Unmarshal(raw, &w))
	at, err := time.Parse(time.RFC3339Nano, w.CreatedAt)
	require.NoError(tb, err, string(raw))
	return at.UTC()
}

// createdByID maps each transaction's id to its createdAt.
func createdByID(txs []scorekeeper.Transaction) map[string]time.Time {
	m := make(map[string]time.Time, len(txs))
	for _, tx := range txs {
		m[tx.ID] = tx.CreatedAt
	}
	return m
}

// Ensure MOCK_TIMESTAMPS=s serves whole seconds, selects by them, and keeps
// the ground truth (the same items, truncated) consistent with what is
// served.
func TestWholeSeconds(t *testing.T) {
	mutate := func(c *Config) {
		c.LiveRate = 60
		c.LateRate = 0
	}
	ms, _, msClock := MustNewServer(t, mutate)
	s, ts, clock := MustNewServer(t, func(c *Config) {
		mutate(c)
		c.WholeSeconds = true
	})
	// Some live minutes too. The clock stands at X.999 so that both see the
	// same items: at X.000, an item of X.5 would be visible only in whole
	// seconds.
	clock.Add(3*time.Minute - time.Millisecond)
	msClock.Add(3*time.Minute - time.Millisecond)

	txs := s.Transactions()
	require.NotEmpty(t, txs)
	for _, tx := range txs {
		require.Zero(t, tx.CreatedAt.Nanosecond(), tx.CreatedAt)
	}
	for _, m := range s.Malformed() {
		require.Zero(t, m.CreatedAt.Nanosecond(), m.Raw)
	}

	t.Run("SameItemsTruncated", func(t *testing.T) {
		want := createdByID(ms.Transactions())
		for id, at := range want {
			want[id] = at.Truncate(time.Second)
		}
		require.Equal(t, want, createdByID(txs))
	})

	t.Run("ServedAsTruth", func(t *testing.T) {
		items, _ := MustFetchAll(t, ts.URL, testStart.Add(-3*time.Hour), clock.Now(), 1000)
		served := make(map[string]time.Time)
		for _, raw := range items {
			if tx, err := validateItem(raw); err == nil {
				require.Contains(t, raw, `.000Z"`, "rendered with zero milliseconds")
				served[tx.ID] = tx.CreatedAt
			}
		}
		require.Equal(t, createdByID(txs), served)
	})

	t.Run("WindowSelectsTheTruncatedInstant", func(t *testing.T) {
		// An item generated at X.5xx is at X: inside the window [X, X].
		i := slices.IndexFunc(ms.Transactions(), func(tx scorekeeper.Transaction) bool { return tx.CreatedAt.Nanosecond() != 0 })
		require.GreaterOrEqual(t, i, 0)
		tx := ms.Transactions()[i]
		sec := tx.CreatedAt.Truncate(time.Second)
		items, _ := MustFetchAll(t, ts.URL, sec, sec, 1000)
		require.True(t, idsOf(t, items)[tx.ID])
		items, _ = MustFetchAll(t, ts.URL, sec.Add(time.Second), sec.Add(2*time.Second), 1000)
		require.False(t, idsOf(t, items)[tx.ID])
	})

	t.Run("StartTruncated", func(t *testing.T) {
		cfg := testConfig(&fakeClock{t: testStart})
		cfg.WholeSeconds = true
		cfg.Start = testStart.Add(1500 * time.Millisecond)
		s, err := New(cfg)
		require.NoError(t, err)
		require.Equal(t, testStart.Add(time.Second), s.Start())
	})
}

// servedOnce pages through [from, to] once and counts each id, with the
// createdAt of every item in the order served.
func servedOnce(t *testing.T, base string, from, to time.Time, limit int) (map[string]int, []time.Time) {
	seen := make(map[string]int)
	var times []time.Time
	for _, lr := range fetchPages(t, base, from, to, limit) {
		for _, raw := range lr.Items {
			tx, err := validateItem(string(raw))
			require.NoError(t, err)
			seen[tx.ID]++
			times = append(times, tx.CreatedAt)
		}
	}
	return seen, times
}

// requireLostAndRepeated fails unless paging through s once (seen) left
// an item on neither page and served another on two.
func requireLostAndRepeated(t *testing.T, s *Server, seen map[string]int) {
	t.Helper()
	missed, twice := 0, 0
	for _, tx := range s.Transactions() {
		switch seen[tx.ID] {
		case 0:
			missed++
		case 2:
			twice++
		}
	}
	require.Positive(t, missed, "an item on neither page")
	require.Positive(t, twice, "an item on both pages")
}

// dense is a minute of whole-second history, about 50 items a second, in
// the ordered listing: many ties, and page boundaries inside seconds.
func dense(c *Config) {
	c.Transactions = 3000
	c.History = time.Minute
	c.DuplicateRate, c.LateRate, c.MalformedRate = 0, 0, 0
	c.WholeSeconds = true
	c.Ordered = true
}

// Ensure MOCK_SHUFFLE_TIES orders ties afresh on every request: pages stay
// chronological, but a boundary inside a second loses some items and
// repeats others, reproducibly for the same requests.
func TestShuffleTies(t *testing.T) {
	from, to := testStart.Add(-time.Minute), testStart
	const limit = 100

	once := func(t *testing.T, base string) (map[string]int, []time.Time) {
		return servedOnce(t, base, from, to, limit)
	}

	t.Run("WithoutShuffleExact", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, dense)
		seen, times := once(t, ts.URL)
		require.Len(t, seen, s.ValidCount())
		for id, n := range seen {
			require.Equal(t, 1, n, id)
		}
		require.True(t, slices.IsSortedFunc(times, time.Time.Compare))
		_, a := MustPage(t, ts.URL, from, to, 2, limit)
		_, b := MustPage(t, ts.URL, from, to, 2, limit)
		require.Equal(t, string(a), string(b))
	})

	s, ts, _ := MustNewServer(t, func(c *Config) {
		dense(c)
		c.ShuffleTies = true
	})

	t.Run("BoundaryInsideSecond", func(t *testing.T) {
		seen, times := once(t, ts.URL)
		require.True(t, slices.IsSortedFunc(times, time.Time.Compare), "still ordered by createdAt")
		requireLostAndRepeated(t, s, seen)
	})

	t.Run("FreshOrderEveryRequest", func(t *testing.T) {
		a, rawA := MustPage(t, ts.URL, from, to, 2, limit)
		b, rawB := MustPage(t, ts.URL, from, to, 2, limit)
		require.NotEqual(t, string(rawA), string(rawB))
		require.Equal(t, a.Meta, b.Meta)
		var ta, tb []time.Time
		for i := range a.Items {
			ta = append(ta, createdAtOf(t, a.Items[i]))
			tb = append(tb, createdAtOf(t, b.Items[i]))
		}
		require.Equal(t, ta, tb, "the same instants, ties in another order")
	})

	t.Run("ReproducibleForSameRequests", func(t *testing.T) {
		run := func() []string {
			_, ts, _ := MustNewServer(t, func(c *Config) {
				dense(c)
				c.ShuffleTies = true
			})
			var bodies []string
			for _, p := range []int{1, 2, 2, 3, 1} {
				_, body := MustPage(t, ts.URL, from, to, p, limit)
				bodies = append(bodies, string(body))
			}
			return bodies
		}
		require.Equal(t, run(), run())
	})

	t.Run("ErrNeedsOrdered", func(t *testing.T) {
		cfg := testConfig(&fakeClock{t: testStart})
		cfg.ShuffleTies = true
		_, err := New(cfg)
		require.ErrorContains(t, err, "MOCK_SHUFFLE_TIES")
	})
}

// Ensure MOCK_NEWEST_FIRST lists a window newest first, every item once
// without MOCK_SHUFFLE_TIES, and with it loses and repeats items where a
// page boundary falls inside a second, as `ORDER BY created_at DESC
// OFFSET n` does.
func TestNewestFirst(t *testing.T) {
	from, to := testStart.Add(-time.Minute), testStart
	const limit = 100
	once := func(t *testing.T, base string) (map[string]int, []time.Time) {
		return servedOnce(t, base, from, to, limit)
	}
	newest := func(a, b time.Time) int { return b.Compare(a) }

	t.Run("EveryItemOnce", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, func(c *Config) {
			dense(c)
			c.NewestFirst = true
		})
		seen, times := once(t, ts.URL)
		require.Len(t, seen, s.ValidCount())
		for id, n := range seen {
			require.Equal(t, 1, n, id)
		}
		require.True(t, slices.IsSortedFunc(times, newest), "newest first")
		require.False(t, slices.IsSortedFunc(times, time.Time.Compare), "not oldest first")
	})

	t.Run("TiesShuffled", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, func(c *Config) {
			dense(c)
			c.NewestFirst, c.ShuffleTies = true, true
		})
		seen, times := once(t, ts.URL)
		require.True(t, slices.IsSortedFunc(times, newest), "still newest first")
		requireLostAndRepeated(t, s, seen)
	})

	t.Run("ErrNeedsOrdered", func(t *testing.T) {
		cfg := testConfig(&fakeClock{t: testStart})
		cfg.NewestFirst = true
		_, err := New(cfg)
		require.ErrorContains(t, err, "MOCK_NEWEST_FIRST")
	})
}

// Ensure MOCK_PAGE_CAP serves at most n items a page and says so in meta.
func TestPageCap(t *testing.T) {
	s, ts, _ := MustNewServer(t, func(c *Config) { c.PageCap = 100 })
	from, to := testStart.Add(-3*time.Hour), testStart

	lr, _ := MustPage(t, ts.URL, from, to, 1, 1000)
	require.Len(t, lr.Items, 100)
	require.Equal(t, 100, lr.Meta.ItemCount)
	require.Equal(t, 100, lr.Meta.ItemsPerPage, "min(limit, cap)")
	require.Greater(t, lr.Meta.TotalItems, 1000)
	require.Equal(t, (lr.Meta.TotalItems+99)/100, lr.Meta.TotalPages)

	last, _ := MustPage(t, ts.URL, from, to, lr.Meta.TotalPages, 1000)
	require.Equal(t, lr.Meta.TotalItems-(lr.Meta.TotalPages-1)*100, last.Meta.ItemCount)
	require.Len(t, last.Items, last.Meta.ItemCount)

	small, _ := MustPage(t, ts.URL, from, to, 1, 30)
	require.Equal(t, 30, small.Meta.ItemsPerPage, "a limit below the cap is honoured")
	require.Len(t, small.Items, 30)
	require.Equal(t, (small.Meta.TotalItems+29)/30, small.Meta.TotalPages)

	// Paging by meta covers the window exactly.
	items, _ := MustFetchAll(t, ts.URL, from, to, 1000)
	require.Len(t, idsOf(t, items), s.ValidCount())
}

// Ensure MOCK_PAGE_DUPLICATES puts one item twice on a page, the copy
// taking a position, while meta.totalItems and totalPages stay the
// listing's.
func TestPageDuplicates(t *testing.T) {
	from, to := testStart.Add(-3*time.Hour), testStart
	const limit = 500
	noDup := func(c *Config) { c.DuplicateRate = 0 }
	_, plainTS, _ := MustNewServer(t, noDup)
	plain := fetchPages(t, plainTS.URL, from, to, limit)
	require.Greater(t, len(plain), 2)

	s, ts, _ := MustNewServer(t, func(c *Config) {
		noDup(c)
		c.PageDuplicates = 1
	})
	pages := fetchPages(t, ts.URL, from, to, limit)
	require.Len(t, pages, len(plain))
	require.Equal(t, len(pages), s.PagesWithDuplicate())
	require.Equal(t, int64(len(pages)), s.Stats().Transactions.PageDuplicates)

	distinct := make(map[string]bool)
	displaced, replaced := 0, 0
	for p, lr := range pages {
		want := plain[p]
		require.Equal(t, want.Meta.TotalItems, lr.Meta.TotalItems, "totalItems does not count the copy")
		require.Equal(t, want.Meta.TotalPages, lr.Meta.TotalPages)
		require.Equal(t, len(lr.Items), lr.Meta.ItemCount, "itemCount counts the copy")

		count := make(map[string]int)
		for _, it := range lr.Items {
			count[string(it)]++
			distinct[string(it)] = true
		}
		require.Len(t, count, len(lr.Items)-1, "exactly one entry is a copy")
		var dup string
		for raw, n := range count {
			if n == 2 {
				dup = raw
			}
		}
		got, listed := rawStrings(lr.Items), rawStrings(want.Items)
		i := slices.Index(got, dup)
		j := i + 1 + slices.Index(got[i+1:], dup)
		// Without the copy the page is the listing's, less the item the
		// copy left out: none (a short page grew), the page's last
		// (the copy right after its original or last), or the one it
		// replaced (not right after its original).
		rest := slices.Delete(slices.Clone(got), j, j+1)
		switch {
		case len(got) == len(listed)+1:
			require.Less(t, len(listed), limit, "only a short page grows")
			require.True(t, j == i+1 || j == len(got)-1, "a copy that takes a position is right after its original or last")
			require.Equal(t, listed, rest)
		case j == i+1 || (j == len(got)-1 && slices.Equal(listed[:len(listed)-1], rest)):
			require.Len(t, got, limit, "the copy takes a position on a full page")
			require.Equal(t, listed[:len(listed)-1], rest)
			displaced++
		default:
			require.GreaterOrEqual(t, j, i+2, "a copy in place of another item is not right after its original")
			require.Equal(t, slices.Delete(slices.Clone(listed), j, j+1), rest)
			displaced++
			replaced++
		}
	}
	require.Positive(t, replaced, "some copies take another item's place")
	// Each page that did not grow displaced one item: served on no page by
	// these requests.
	require.Len(t, distinct, plain[0].Meta.TotalItems-displaced)

	t.Run("Fraction", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, func(c *Config) { c.PageDuplicates = 0.5 })
		for range 20 {
			MustPage(t, ts.URL, from, to, 2, 100)
		}
		require.Greater(t, s.PagesWithDuplicate(), 0)
		require.Less(t, s.PagesWithDuplicate(), 20)
	})
}

func rawStrings(rs []json.RawMessage) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// Ensure MOCK_BIG_ITEM_BYTES adds one malformed item of that size to the
// history, served like any other and part of the malformed ground truth.
func TestBigItem(t *testing.T) {
	const size = 1 << 20
	noise := func(c *Config) { c.DuplicateRate, c.LateRate, c.MalformedRate = 0, 0, 0 }
	plain, _, _ := MustNewServer(t, noise)
	s, ts, _ := MustNewServer(t, func(c *Config) {
		noise(c)
		c.BigItemBytes = size
	})

	mal := s.Malformed()
	require.Len(t, mal, 1)
	big := mal[0]
	require.Equal(t, MalformedBig, big.Kind)
	require.Equal(t, size, len(big.Raw))
	require.True(t, json.Valid([]byte(big.Raw)))
	require.Contains(t, big.Raw, `"note":"lorem ipsum`)
	_, err := validateItem(big.Raw)
	require.Error(t, err, "it must be quarantined")
	history := s.Config().History
	require.False(t, big.CreatedAt.Before(testStart.Add(-history)))
	require.False(t, big.CreatedAt.After(testStart))
	require.Equal(t, 1, s.MalformedCount())
	require.Equal(t, plain.Transactions(), s.Transactions(), "the valid data is unchanged")

	items, total := MustFetchAll(t, ts.URL, testStart.Add(-3*time.Hour), testStart, 1000)
	require.Contains(t, items, big.Raw)
	require.Equal(t, s.ValidCount()+1, total, "counted in totalItems")

	t.Run("WithOtherMalformed", func(t *testing.T) {
		a, _, _ := MustNewServer(t, nil)
		b, _, _ := MustNewServer(t, func(c *Config) { c.BigItemBytes = 100 })
		require.Equal(t, a.MalformedCount()+1, b.MalformedCount())
		n := 0
		for _, m := range b.Malformed() {
			if m.Kind == MalformedBig {
				n++
				require.True(t, json.Valid([]byte(m.Raw)))
			}
		}
		require.Equal(t, 1, n)
	})
}

// Ensure MOCK_CLOCK_SKEW shows items skew after their createdAt, while the
// rate limit keeps the real clock.
func TestClockSkew(t *testing.T) {
	const skew = 5 * time.Second
	live := func(c *Config) {
		c.LiveRate = 600
		c.LateRate, c.MalformedRate = 0, 0 // every createdAt readable
	}
	twin, _, twinClock := MustNewServer(t, live)
	s, ts, clock := MustNewServer(t, func(c *Config) {
		live(c)
		c.ClockSkew = skew
	})
	now := testStart.Add(2 * time.Minute)
	clock.Set(now)
	twinClock.Set(now)
	from, to := testStart.Add(-3*time.Hour), testStart.Add(3*time.Minute)

	// The twin without skew shows items in (now-skew, now]; s does not yet.
	recent := 0
	for _, tx := range twin.Transactions() {
		if tx.CreatedAt.After(now.Add(-skew)) {
			recent++
		}
	}
	require.Positive(t, recent)
	items, _ := MustFetchAll(t, ts.URL, from, to, 1000)
	for _, raw := range items {
		require.False(t, createdAtOf(t, json.RawMessage(raw)).After(now.Add(-skew)), raw)
	}
	require.Equal(t, len(s.Transactions()), len(idsOf(t, items)))
	twinClock.Set(now.Add(-skew))
	require.Equal(t, twin.Transactions(), s.Transactions(), "the truth is taken at the skewed clock")
	require.Equal(t, twin.Truth(), s.Truth())

	// skew later, s shows what the twin showed at now.
	clock.Set(now.Add(skew))
	twinClock.Set(now)
	items, _ = MustFetchAll(t, ts.URL, from, to, 1000)
	require.Equal(t, len(twin.Transactions()), len(idsOf(t, items)))

	_, accepted := s.RequestTimes()
	require.Equal(t, now.Add(skew), accepted[len(accepted)-1], "the rate limit keeps the real clock")
	st := s.Stats()
	require.Equal(t, now.Add(skew), st.Now)
	require.Equal(t, now, st.DataNow)

	t.Run("ZeroStartIsSkewedNow", func(t *testing.T) {
		cfg := testConfig(&fakeClock{t: testStart})
		cfg.Start = time.Time{}
		cfg.ClockSkew = skew
		s, err := New(cfg)
		require.NoError(t, err)
		require.Equal(t, testStart.Add(-skew), s.Start())
	})
}

// Ensure MOCK_DROP_RATE closes admitted requests unanswered, each one
// counted by the rate limit.
func TestDropRate(t *testing.T) {
	// One connection per request: Go's transport would resend a GET that
	// a reused connection dropped, and the mock would count two.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	do := func(t *testing.T, base string) (int, error) {
		resp, err := client.Get(listURL(base, testStart.Add(-time.Hour), testStart, 1, 10))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	t.Run("CountedThenClosed", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, func(c *Config) {
			c.RateLimit, c.RateWindow = 5, time.Minute
			c.DropRate = 1
		})
		for range 5 {
			_, err := do(t, ts.URL)
			require.Error(t, err, "no answer at all")
		}
		status, err := do(t, ts.URL)
		require.NoError(t, err)
		require.Equal(t, http.StatusTooManyRequests, status, "the dropped requests used the budget")
		require.Equal(t, 5, s.DroppedRequests())
		st := s.Stats().Transactions
		require.Equal(t, int64(6), st.Received)
		require.Equal(t, int64(5), st.Accepted)
		require.Equal(t, int64(5), st.Dropped)
		require.Zero(t, st.OK)
		require.Zero(t, st.Failed)
		require.Zero(t, s.PagesAnsweredTwice())
	})

	t.Run("FractionReproducible", func(t *testing.T) {
		run := func() []string {
			s, ts, _ := MustNewServer(t, func(c *Config) { c.DropRate = 0.5 })
			var out []string
			for range 30 {
				status, err := do(t, ts.URL)
				if err != nil {
					out = append(out, "dropped")
				} else {
					out = append(out, http.StatusText(status))
				}
			}
			require.Equal(t, strings.Count(strings.Join(out, ","), "dropped"), s.DroppedRequests())
			require.Equal(t, int64(30), s.Stats().Transactions.Accepted)
			return out
		}
		a := run()
		require.Equal(t, a, run())
		require.Contains(t, a, "dropped")
		require.Contains(t, a, "OK")
	})
}
