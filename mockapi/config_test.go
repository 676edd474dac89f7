package mockapi

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigFromEnv(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		cfg, err := ConfigFromEnv(envOf(nil))
		require.NoError(t, err)
		require.Equal(t, DefaultConfig(), cfg)
		require.Equal(t, 5, cfg.RateLimit)
		require.Equal(t, time.Minute, cfg.RateWindow)
		require.NoError(t, cfg.Validate())
	})

	t.Run("OK", func(t *testing.T) {
		cfg, err := ConfigFromEnv(envOf(map[string]string{
			"MOCK_SEED":                "7",
			"MOCK_USERS":               "1000",
			"MOCK_TRANSACTIONS":        "100000",
			"MOCK_HISTORY":             "48h",
			"MOCK_LIVE_RATE":           "4500",
			"MOCK_RATE":                "10/30s",
			"MOCK_DUPLICATE_RATE":      "0.1",
			"MOCK_LATE_RATE":           "0.2",
			"MOCK_LATE_DELAY":          "3m",
			"MOCK_MALFORMED_RATE":      "0.01",
			"MOCK_MALFORMED_KINDS":     "zero_amount, missing_id",
			"MOCK_FAIL_RATE":           "0.05",
			"MOCK_SLOW_RATE":           "0.1",
			"MOCK_SLOW_DELAY":          "15s",
			"MOCK_PAYOUT_FAIL_RATE":    "0.2",
			"MOCK_PAYOUT_REJECT_USERS": "123456, 654321",
			"MOCK_PAYOUT_REJECT_RATE":  "0.05",
			"MOCK_PAYOUT_LATENCY":      "200ms",
			"MOCK_START":               "2023-03-16T12:00:00Z",
			"MOCK_ORDERED":             "true",
			"MOCK_SHUFFLE_TIES":        "true",
			"MOCK_NEWEST_FIRST":        "true",
			"MOCK_TIMESTAMPS":          "s",
			"MOCK_PAGE_CAP":            "100",
			"MOCK_PAGE_DUPLICATES":     "0.25",
			"MOCK_BIG_ITEM_BYTES":      "1048576",
			"MOCK_CLOCK_SKEW":          "3s",
			"MOCK_DROP_RATE":           "0.1",
		}))
		require.NoError(t, err)
		require.Equal(t, Config{
			Seed: 7, Users: 1000, Transactions: 100000, History: 48 * time.Hour, LiveRate: 4500,
			RateLimit: 10, RateWindow: 30 * time.Second, DuplicateRate: 0.1, LateRate: 0.2, LateDelay: 3 * time.Minute,
			MalformedRate: 0.01, MalformedKinds: []MalformedKind{MalformedZeroAmount, MalformedMissingID},
			FailRate: 0.05, SlowRate: 0.1, SlowDelay: 15 * time.Second, PayoutFailRate: 0.2,
			PayoutRejectUsers: []string{"123456", "654321"}, PayoutRejectRate: 0.05,
			PayoutLatency: 200 * time.Millisecond, Start: testStart,
			Ordered: true, ShuffleTies: true, NewestFirst: true, WholeSeconds: true, PageCap: 100, PageDuplicates: 0.25,
			BigItemBytes: 1 << 20, ClockSkew: 3 * time.Second, DropRate: 0.1,
		}, cfg)
	})

	t.Run("TimestampsMs", func(t *testing.T) {
		cfg, err := ConfigFromEnv(envOf(map[string]string{"MOCK_TIMESTAMPS": "ms"}))
		require.NoError(t, err)
		require.False(t, cfg.WholeSeconds)
	})

	for name, v := range map[string]string{
		"MOCK_SEED":                "x",
		"MOCK_USERS":               "0",
		"MOCK_TRANSACTIONS":        "-1",
		"MOCK_HISTORY":             "yesterday",
		"MOCK_LIVE_RATE":           "1.5",
		"MOCK_RATE":                "5",
		"MOCK_DUPLICATE_RATE":      "1.5",
		"MOCK_LATE_RATE":           "-0.1",
		"MOCK_LATE_DELAY":          "-1s",
		"MOCK_MALFORMED_RATE":      "lots",
		"MOCK_MALFORMED_KINDS":     "zero_amount,weird",
		"MOCK_FAIL_RATE":           "NaN",
		"MOCK_SLOW_RATE":           "2",
		"MOCK_SLOW_DELAY":          "10",
		"MOCK_PAYOUT_FAIL_RATE":    "50%",
		"MOCK_PAYOUT_REJECT_USERS": "123456,bad user",
		"MOCK_PAYOUT_REJECT_RATE":  "x",
		"MOCK_PAYOUT_LATENCY":      "fast",
		"MOCK_START":               "2023-03-16",
		"MOCK_TIMESTAMPS":          "us",
		"MOCK_SHUFFLE_TIES":        "sometimes",
		"MOCK_NEWEST_FIRST":        "yes please",
		"MOCK_PAGE_CAP":            "0",
		"MOCK_PAGE_DUPLICATES":     "1.01",
		"MOCK_BIG_ITEM_BYTES":      "-1",
		"MOCK_CLOCK_SKEW":          "-2s",
		"MOCK_DROP_RATE":           "some",
	} {
		t.Run("Err"+name, func(t *testing.T) {
			_, err := ConfigFromEnv(envOf(map[string]string{name: v}))
			require.ErrorContains(t, err, name)
		})
	}

	t.Run("ErrPageCapTooLarge", func(t *testing.T) {
		_, err := ConfigFromEnv(envOf(map[string]string{"MOCK_PAGE_CAP": "1001"}))
		require.ErrorContains(t, err, "MOCK_PAGE_CAP")
	})

	t.Run("ErrShuffleTiesUnordered", func(t *testing.T) {
		_, err := ConfigFromEnv(envOf(map[string]string{"MOCK_SHUFFLE_TIES": "true"}))
		require.ErrorContains(t, err, "MOCK_SHUFFLE_TIES")
	})

	t.Run("ErrNamesEveryBadVariable", func(t *testing.T) {
		_, err := ConfigFromEnv(envOf(map[string]string{"MOCK_USERS": "x", "MOCK_RATE": "y"}))
		require.ErrorContains(t, err, "MOCK_USERS")
		require.ErrorContains(t, err, "MOCK_RATE")
	})
}

// Ensure MOCK_RATE takes config.ParseRate's grammar, off included.
func TestConfigFromEnv_Rate(t *testing.T) {
	for in, want := range map[string]struct {
		n int
		w time.Duration
	}{
		"5/1m":    {5, time.Minute},
		"5/m":     {5, time.Minute},
		"100/1s":  {100, time.Second},
		" 3/90s ": {3, 90 * time.Second},
		"6/100ms": {6, 100 * time.Millisecond},
		"off":     {0, 0},
		"0":       {0, 0},
	} {
		cfg, err := ConfigFromEnv(envOf(map[string]string{"MOCK_RATE": in}))
		require.NoError(t, err, in)
		require.Equal(t, want.n, cfg.RateLimit, in)
		require.Equal(t, want.w, cfg.RateWindow, in)
	}
	for _, in := range []string{"5", "0/1m", "-1/1m", "5/0s", "5/-1m", "five/1m", "5/soon"} {
		_, err := ConfigFromEnv(envOf(map[string]string{"MOCK_RATE": in}))
		require.ErrorContains(t, err, "MOCK_RATE", in)
	}
}

func TestNew_Validate(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"ErrUsers":        func(c *Config) { c.Users = MaxUsers + 1 },
		"ErrRateWindow":   func(c *Config) { c.RateWindow = 0 },
		"ErrRate":         func(c *Config) { c.FailRate = 2 },
		"ErrKind":         func(c *Config) { c.MalformedKinds = []MalformedKind{"odd"} },
		"ErrRejectUserID": func(c *Config) { c.PayoutRejectUsers = []string{""} },
		"ErrShuffleTies":  func(c *Config) { c.ShuffleTies = true },
		"ErrPageCap":      func(c *Config) { c.PageCap = MaxPageSize + 1 },
		"ErrPageDups":     func(c *Config) { c.PageDuplicates = -0.5 },
		"ErrBigItem":      func(c *Config) { c.BigItemBytes = MaxBigItemBytes + 1 },
		"ErrClockSkew":    func(c *Config) { c.ClockSkew = -time.Second },
		"ErrDropRate":     func(c *Config) { c.DropRate = 1.5 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.RateLimit = 5
			cfg.RateWindow = time.Minute
			mutate(&cfg)
			_, err := New(cfg)
			require.Error(t, err)
		})
	}
	t.Run("ErrLiveBacklog", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Start = testStart
		cfg.LiveRate = 100
		cfg.Now = func() time.Time { return testStart.AddDate(1, 0, 0) }
		_, err := New(cfg)
		require.ErrorContains(t, err, "MOCK_START")
	})
	t.Run("ZeroStartIsNow", func(t *testing.T) {
		clock := &fakeClock{t: testStart.Add(1234567 * time.Microsecond)}
		cfg := DefaultConfig()
		cfg.Now = clock.Now
		s, err := New(cfg)
		require.NoError(t, err)
		require.Equal(t, testStart.Add(1234*time.Millisecond), s.Start())
	})
}
