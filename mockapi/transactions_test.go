package mockapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
)

// idsOf returns the distinct ids of the valid items among raw items.
func idsOf(t *testing.T, items []string) map[string]bool {
	t.Helper()
	ids := make(map[string]bool)
	for _, raw := range items {
		if tx, err := validateItem(raw); err == nil {
			ids[tx.ID] = true
		}
	}
	return ids
}

func TestTransactions_Window(t *testing.T) {
	s, ts, _ := MustNewServer(t, func(c *Config) {
		c.Transactions = 20000
		c.History = time.Hour
		c.DuplicateRate, c.LateRate, c.MalformedRate = 0, 0, 0
	})
	txs := s.Transactions()
	// Ensure an item exactly on a second boundary exists: it decides
	// inclusivity at both ends.
	i := slices.IndexFunc(txs, func(tx scorekeeper.Transaction) bool { return tx.CreatedAt.Nanosecond() == 0 })
	require.GreaterOrEqual(t, i, 0, "seeded data must have an item at .000")
	onSecond := txs[i]
	x := onSecond.CreatedAt

	t.Run("InclusiveAtBothEnds", func(t *testing.T) {
		for name, w := range map[string][2]time.Time{
			"StartEqualsEnd": {x, x},
			"AtEnd":          {x.Add(-time.Second), x},
			"AtStart":        {x, x.Add(time.Second)},
		} {
			items, _ := MustFetchAll(t, ts.URL, w[0], w[1], 1000)
			require.True(t, idsOf(t, items)[onSecond.ID], name)
		}
		items, _ := MustFetchAll(t, ts.URL, x.Add(-2*time.Second), x.Add(-time.Second), 1000)
		require.False(t, idsOf(t, items)[onSecond.ID], "window ending a second earlier")
	})

	t.Run("EndIsWholeSecond", func(t *testing.T) {
		// An item at S.5xx is after a window ending at S (S.000) and inside
		// the one starting at S.
		j := slices.IndexFunc(txs, func(tx scorekeeper.Transaction) bool { return tx.CreatedAt.Nanosecond() >= 1e6 })
		require.GreaterOrEqual(t, j, 0)
		mid := txs[j]
		sec := mid.CreatedAt.Truncate(time.Second)
		items, _ := MustFetchAll(t, ts.URL, sec.Add(-time.Second), sec, 1000)
		require.False(t, idsOf(t, items)[mid.ID])
		items, _ = MustFetchAll(t, ts.URL, sec, sec.Add(time.Second), 1000)
		require.True(t, idsOf(t, items)[mid.ID])
	})

	t.Run("MatchesTruth", func(t *testing.T) {
		from, to := testStart.Add(-40*time.Minute), testStart.Add(-30*time.Minute)
		items, total := MustFetchAll(t, ts.URL, from, to, 1000)
		want := make(map[string]bool)
		for _, tx := range txs {
			if !tx.CreatedAt.Before(from) && !tx.CreatedAt.After(to) {
				want[tx.ID] = true
			}
		}
		require.Equal(t, want, idsOf(t, items))
		require.Equal(t, len(want), total, "no duplicates or malformed items configured")
	})
}

func TestTransactions_Paging(t *testing.T) {
	s, ts, _ := MustNewServer(t, nil)
	from, to := testStart.Add(-3*time.Hour), testStart

	t.Run("UnionOfPagesIsTruth", func(t *testing.T) {
		items, total := MustFetchAll(t, ts.URL, from, to, 1000)
		require.Greater(t, total, 1000, "must span several pages")

		want := make(map[string]bool)
		for _, tx := range s.Transactions() {
			want[tx.ID] = true
		}
		require.Equal(t, want, idsOf(t, items))

		// Every served item is a distinct valid or malformed item, or an
		// exact copy of one; copies count in totalItems.
		distinct := make(map[string]int)
		for _, raw := range items {
			distinct[raw]++
		}
		require.Equal(t, s.ValidCount()+s.MalformedCount(), len(distinct))
		require.Greater(t, len(items), len(distinct), "DuplicateRate must inject copies")
		for raw, n := range distinct {
			require.LessOrEqual(t, n, 2, raw)
		}
	})

	t.Run("DuplicatesOnDifferentPages", func(t *testing.T) {
		pageOf := make(map[string][]int)
		lr, _ := MustPage(t, ts.URL, from, to, 1, 1000)
		for p := 1; p <= lr.Meta.TotalPages; p++ {
			page, _ := MustPage(t, ts.URL, from, to, p, 1000)
			for _, it := range page.Items {
				pageOf[string(it)] = append(pageOf[string(it)], p)
			}
		}
		across := 0
		for _, pages := range pageOf {
			if len(pages) == 2 && pages[0] != pages[1] {
				across++
			}
		}
		require.Positive(t, across)
	})

	t.Run("StableBetweenCalls", func(t *testing.T) {
		_, a := MustPage(t, ts.URL, from, to, 2, 500)
		_, b := MustPage(t, ts.URL, from, to, 2, 500)
		require.Equal(t, string(a), string(b))
	})

	t.Run("NotChronological", func(t *testing.T) {
		lr, _ := MustPage(t, ts.URL, from, to, 1, 1000)
		var times []string
		for _, it := range lr.Items {
			var w wireItem
			require.NoError(t, json.Unmarshal(it, &w))
			times = append(times, w.CreatedAt)
		}
		require.False(t, slices.IsSorted(times))
	})

	t.Run("PageBeyondEnd", func(t *testing.T) {
		lr, body := MustPage(t, ts.URL, from, to, 99, 1000)
		require.Empty(t, lr.Items)
		require.Contains(t, string(body), `"items":[]`)
		require.Equal(t, 99, lr.Meta.CurrentPage)
		require.Equal(t, 0, lr.Meta.ItemCount)
	})

	t.Run("EmptyWindow", func(t *testing.T) {
		old := testStart.AddDate(-1, 0, 0)
		lr, _ := MustPage(t, ts.URL, old, old.Add(time.Hour), 1, 1000)
		require.Empty(t, lr.Items)
		require.Equal(t, 0, lr.Meta.TotalItems)
		require.Equal(t, 0, lr.Meta.TotalPages)
	})
}

func TestTransactions_LimitCap(t *testing.T) {
	_, ts, _ := MustNewServer(t, nil)
	lr, _ := MustPage(t, ts.URL, testStart.Add(-3*time.Hour), testStart, 1, 5000)
	require.Equal(t, MaxPageSize, lr.Meta.ItemsPerPage)
	require.Equal(t, MaxPageSize, lr.Meta.ItemCount)
	require.Len(t, lr.Items, MaxPageSize)
	require.Equal(t, (lr.Meta.TotalItems+999)/1000, lr.Meta.TotalPages)
}

func TestTransactions_BadParams(t *testing.T) {
	_, ts, _ := MustNewServer(t, nil)
	for name, query := range map[string]string{
		"ErrMissingStartDate": "endDate=2023-03-16+12:00:00",
		"ErrMissingEndDate":   "startDate=2023-03-16+12:00:00",
		"ErrISODate":          "startDate=2023-03-16T11:00:00Z&endDate=2023-03-16+12:00:00",
		"ErrDateOnly":         "startDate=2023-03-16&endDate=2023-03-16+12:00:00",
		"ErrImpossibleDate":   "startDate=2023-02-30+11:00:00&endDate=2023-03-16+12:00:00",
		"ErrStartAfterEnd":    "startDate=2023-03-16+12:00:01&endDate=2023-03-16+12:00:00",
		"ErrPageZero":         "startDate=2023-03-16+11:00:00&endDate=2023-03-16+12:00:00&page=0",
		"ErrPageNotNumber":    "startDate=2023-03-16+11:00:00&endDate=2023-03-16+12:00:00&page=abc",
		"ErrLimitZero":        "startDate=2023-03-16+11:00:00&endDate=2023-03-16+12:00:00&limit=0",
		"ErrLimitNegative":    "startDate=2023-03-16+11:00:00&endDate=2023-03-16+12:00:00&limit=-5",
	} {
		t.Run(name, func(t *testing.T) {
			status, hdr, body := get(t, ts.URL+"/transactions?"+query)
			require.Equal(t, http.StatusBadRequest, status)
			require.Equal(t, "application/json", hdr.Get("Content-Type"))
			require.Equal(t, "invalid_request", errorCode(t, body))
		})
	}
	t.Run("DefaultsPageAndLimit", func(t *testing.T) {
		status, _, body := get(t, ts.URL+"/transactions?startDate=2023-03-16+11:00:00&endDate=2023-03-16+12:00:00")
		require.Equal(t, http.StatusOK, status)
		var lr listResponse
		require.NoError(t, json.Unmarshal(body, &lr))
		require.Equal(t, 1, lr.Meta.CurrentPage)
		require.Equal(t, DefaultPageSize, lr.Meta.ItemsPerPage)
	})
}

func TestTransactions_ResponseShape(t *testing.T) {
	s, ts, _ := MustNewServer(t, func(c *Config) { c.MalformedRate = 0 })
	_, body := MustPage(t, ts.URL, testStart.Add(-time.Hour), testStart, 1, 50)

	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &top))
	require.ElementsMatch(t, []string{"items", "meta"}, keys(top))
	var meta map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(top["meta"], &meta))
	require.ElementsMatch(t, []string{"totalItems", "itemCount", "itemsPerPage", "totalPages", "currentPage"}, keys(meta))

	var items []map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(top["items"], &items))
	require.Len(t, items, 50)
	iso := regexp.MustCompile(`^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$`)
	number := regexp.MustCompile(`^(0|[1-9]\d*)(\.\d{1,2})?$`)
	user := regexp.MustCompile(`^"\d{6}"$`)
	uuid := regexp.MustCompile(`^"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"$`)
	decimals := map[int]bool{}
	for _, it := range items {
		require.ElementsMatch(t, []string{"id", "userId", "createdAt", "type", "amount"}, keys(it))
		require.Regexp(t, iso, string(it["createdAt"]))
		require.Regexp(t, number, string(it["amount"]), "amount is a plain JSON number")
		require.Regexp(t, user, string(it["userId"]))
		require.Regexp(t, uuid, string(it["id"]))
		a := string(it["amount"])
		if k := slices.Index([]byte(a), '.'); k >= 0 {
			decimals[len(a)-k-1] = true
		} else {
			decimals[0] = true
		}
	}
	require.Equal(t, map[int]bool{0: true, 1: true, 2: true}, decimals, "amounts with 0, 1 and 2 decimals")

	t.Run("ValidItemsPassValidation", func(t *testing.T) {
		for _, tx := range s.Transactions() {
			require.NoError(t, tx.Validate())
			require.Equal(t, time.UTC, tx.CreatedAt.Location())
			require.Zero(t, tx.CreatedAt.Nanosecond()%int(time.Millisecond))
		}
		items, _ := MustFetchAll(t, ts.URL, testStart.Add(-3*time.Hour), testStart, 1000)
		for _, raw := range items {
			_, err := validateItem(raw)
			require.NoError(t, err, raw)
		}
	})
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestTransactions_LateItems(t *testing.T) {
	s, ts, clock := MustNewServer(t, func(c *Config) {
		c.LateRate = 0.3
		c.Transactions = 20000
	})
	// Find valid late items that are still hidden at Start.
	var late []scorekeeper.Transaction
	startMs := testStart.UnixMilli()
	for _, e := range s.gen.entries {
		if e.tx >= 0 && !e.dup && e.visible > startMs {
			late = append(late, s.gen.txs[e.tx])
		}
	}
	require.NotEmpty(t, late)
	from, to := testStart.Add(-5*time.Minute), testStart

	t.Run("HiddenUntilLateDelay", func(t *testing.T) {
		items, _ := MustFetchAll(t, ts.URL, from, to, 1000)
		ids := idsOf(t, items)
		for _, tx := range late {
			require.False(t, ids[tx.ID], "late item served early")
		}
		require.Greater(t, totalCents(s.TruthAll()), totalCents(s.Truth()), "TruthAll counts hidden items")
	})

	t.Run("VisibleExactlyAtDelay", func(t *testing.T) {
		first := slices.MinFunc(late, func(a, b scorekeeper.Transaction) int { return a.CreatedAt.Compare(b.CreatedAt) })
		clock.Set(first.CreatedAt.Add(90*time.Second - time.Millisecond))
		items, _ := MustFetchAll(t, ts.URL, from, to, 1000)
		require.False(t, idsOf(t, items)[first.ID])
		clock.Set(first.CreatedAt.Add(90 * time.Second))
		items, _ = MustFetchAll(t, ts.URL, from, to, 1000)
		require.True(t, idsOf(t, items)[first.ID])
	})

	t.Run("AllVisibleLater", func(t *testing.T) {
		clock.Set(testStart.Add(90 * time.Second))
		items, _ := MustFetchAll(t, ts.URL, from, to, 1000)
		ids := idsOf(t, items)
		for _, tx := range late {
			require.True(t, ids[tx.ID])
		}
		require.Equal(t, s.TruthAll(), s.Truth())
	})
}

// totalCents sums every amount in m, so any extra item makes it larger.
func totalCents(m map[string]scorekeeper.Summary) scorekeeper.Amount {
	var n scorekeeper.Amount
	for _, s := range m {
		n += s.Earned + s.Spent + s.Payout
	}
	return n
}

func TestTransactions_LiveData(t *testing.T) {
	s, ts, clock := MustNewServer(t, func(c *Config) {
		c.LiveRate = 120
		c.LateRate = 0
	})
	from, to := testStart.Add(time.Millisecond), testStart.Add(10*time.Minute)
	before := s.ValidCount()

	t.Run("NothingInTheFuture", func(t *testing.T) {
		lr, _ := MustPage(t, ts.URL, from, to, 1, 1000)
		require.Zero(t, lr.Meta.TotalItems)
	})

	t.Run("AppearsAsTimePasses", func(t *testing.T) {
		clock.Set(testStart.Add(150 * time.Second))
		now := clock.Now()
		items, _ := MustFetchAll(t, ts.URL, from, to, 1000)
		ids := idsOf(t, items)
		require.Greater(t, len(ids), 200, "two full minutes and a half")
		require.Less(t, len(ids), 360)
		for _, tx := range s.Transactions() {
			require.False(t, tx.CreatedAt.After(now))
		}
		require.Equal(t, before+len(ids), s.ValidCount())

		clock.Set(testStart.Add(10 * time.Minute))
		items, _ = MustFetchAll(t, ts.URL, from, to, 1000)
		require.Greater(t, len(idsOf(t, items)), len(ids))
	})
}

func TestMalformed(t *testing.T) {
	s, ts, _ := MustNewServer(t, func(c *Config) { c.MalformedRate = 0.1 })
	mal := s.Malformed()
	require.Equal(t, len(mal), s.MalformedCount())

	t.Run("AllKindsPresent", func(t *testing.T) {
		seen := make(map[MalformedKind]bool)
		for _, m := range mal {
			seen[m.Kind] = true
		}
		require.Len(t, seen, len(AllMalformedKinds))
	})

	t.Run("RawUnique", func(t *testing.T) {
		raws := make(map[string]bool)
		for _, m := range mal {
			require.False(t, raws[m.Raw], m.Raw)
			raws[m.Raw] = true
		}
	})

	t.Run("EveryKindFailsValidation", func(t *testing.T) {
		for _, m := range mal {
			_, err := validateItem(m.Raw)
			require.Error(t, err, "%s: %s", m.Kind, m.Raw)
		}
	})

	t.Run("SelectedByHiddenCreatedAt", func(t *testing.T) {
		for _, k := range []MalformedKind{MalformedMissingCreatedAt, MalformedBadCreatedAt, MalformedMissingID} {
			i := slices.IndexFunc(mal, func(m MalformedItem) bool { return m.Kind == k })
			require.GreaterOrEqual(t, i, 0)
			sec := mal[i].CreatedAt.Truncate(time.Second)
			items, _ := MustFetchAll(t, ts.URL, sec, sec.Add(time.Second), 1000)
			require.Contains(t, items, mal[i].Raw, k)
		}
	})

	t.Run("AllServedOnce", func(t *testing.T) {
		items, _ := MustFetchAll(t, ts.URL, testStart.Add(-3*time.Hour), testStart, 1000)
		served := make(map[string]bool)
		for _, raw := range items {
			if _, err := validateItem(raw); err != nil {
				served[raw] = true
			}
		}
		require.Len(t, served, s.MalformedCount())
	})

	t.Run("RestrictedKinds", func(t *testing.T) {
		s2, _, _ := MustNewServer(t, func(c *Config) {
			c.MalformedRate = 0.1
			c.MalformedKinds = []MalformedKind{MalformedZeroAmount, MalformedUnknownType}
		})
		for _, m := range s2.Malformed() {
			require.Contains(t, []MalformedKind{MalformedZeroAmount, MalformedUnknownType}, m.Kind)
		}
		// Malformed companions don't disturb the valid data.
		require.Equal(t, s.Transactions(), s2.Transactions())
	})
}

func TestDeterminism(t *testing.T) {
	a, tsA, _ := MustNewServer(t, func(c *Config) { c.LiveRate = 30 })
	b, tsB, _ := MustNewServer(t, func(c *Config) { c.LiveRate = 30 })
	from, to := testStart.Add(-time.Hour), testStart

	t.Run("SameConfigSameData", func(t *testing.T) {
		require.Equal(t, a.Users(), b.Users())
		require.Equal(t, a.Transactions(), b.Transactions())
		require.Equal(t, a.Malformed(), b.Malformed())
		require.Equal(t, a.Truth(), b.Truth())
		_, pa := MustPage(t, tsA.URL, from, to, 3, 100)
		_, pb := MustPage(t, tsB.URL, from, to, 3, 100)
		require.Equal(t, string(pa), string(pb))
	})

	t.Run("LiveDataSameWhateverTheQueryPattern", func(t *testing.T) {
		// a is read minute by minute, b once at the end.
		aclock, bclock := &fakeClock{t: testStart}, &fakeClock{t: testStart}
		cfg := testConfig(aclock)
		cfg.LiveRate = 30
		sa, err := New(cfg)
		require.NoError(t, err)
		cfg.Now = bclock.Now
		sb, err := New(cfg)
		require.NoError(t, err)
		for i := 0; i < 5; i++ {
			aclock.Add(time.Minute)
			_ = sa.ValidCount()
		}
		bclock.Add(5 * time.Minute)
		require.Equal(t, sa.Transactions(), sb.Transactions())
	})

	t.Run("OtherSeedOtherData", func(t *testing.T) {
		c, _, _ := MustNewServer(t, func(c *Config) { c.Seed = 43 })
		require.NotEqual(t, a.Transactions()[0].ID, c.Transactions()[0].ID)
		require.NotEqual(t, a.Users(), c.Users())
	})

	t.Run("UserIDs", func(t *testing.T) {
		users := a.Users()
		require.Len(t, users, 50)
		seen := make(map[string]bool)
		for _, u := range users {
			require.Regexp(t, `^\d{6}$`, u)
			require.False(t, seen[u])
			seen[u] = true
		}
		require.Len(t, genUsers(1, MaxUsers), MaxUsers)
	})
}

func TestTransactions_Large(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 100,000 transactions")
	}
	s, ts, _ := MustNewServer(t, func(c *Config) {
		c.Transactions = 100_000
		c.History = time.Hour
	})
	items, total := MustFetchAll(t, ts.URL, testStart.Add(-time.Hour), testStart, 1000)
	require.Greater(t, total, 100_000)
	require.Len(t, idsOf(t, items), s.ValidCount())
}

func TestConcurrentUse(t *testing.T) {
	s, ts, clock := MustNewServer(t, func(c *Config) { c.LiveRate = 600 })
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				switch (g + i) % 3 {
				case 0:
					clock.Add(7 * time.Second)
				case 1:
					_ = s.Truth()
					_ = s.Stats()
				}
				resp, err := http.Get(listURL(ts.URL, testStart.Add(-time.Minute), testStart.Add(5*time.Minute), 1+i%3, 100))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Everything visible at the end is in the truth, counted once.
	items, _ := MustFetchAll(t, ts.URL, testStart.Add(-3*time.Hour), clock.Now(), 1000)
	require.Len(t, idsOf(t, items), s.ValidCount())
}

// Ensure a truncate fault cuts the page off mid-body: the client sees an
// unexpected end, not a page.
func TestTransactions_TruncateFault(t *testing.T) {
	s, err := New(func() Config {
		c := DefaultConfig()
		c.RateLimit = 0
		c.Now = (&fakeClock{t: testStart}).Now
		c.Start = testStart
		return c
	}())
	require.NoError(t, err)
	require.NoError(t, s.InjectFault(Fault{Truncate: true}))
	hs := httptest.NewServer(s)
	defer hs.Close()
	date := func(t time.Time) string { return strings.ReplaceAll(t.UTC().Format(DateLayout), " ", "+") }
	url := hs.URL + "/transactions?startDate=" + date(testStart.Add(-24*time.Hour)) + "&endDate=" + date(testStart) + "&page=1&limit=1000"
	resp, err := http.Get(url)
	require.NoError(t, err)
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Error(t, err, "the body ends early")
	resp, err = http.Get(url)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err, "one request only")
	require.True(t, json.Valid(b))
	require.Error(t, s.InjectFault(Fault{Truncate: true, Status: 500}))
	require.Error(t, s.InjectFault(Fault{Truncate: true, Target: FaultPayouts}))
}
