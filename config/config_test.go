package config_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper/config"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestFromEnv(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		c, err := config.FromEnv(env(nil))
		require.NoError(t, err)
		require.Equal(t, config.Defaults(), c)
		require.Equal(t, ":3000", c.HTTPAddr)
		require.Equal(t, "file:data/scorekeeper.db", c.DatabaseURL)
		require.Equal(t, config.Rate{N: 5, Per: time.Minute}, c.UpstreamRate)
		require.Equal(t, 2*time.Minute, c.SyncOverlap)
		require.True(t, c.SyncStart.Equal(time.Unix(0, 0)))
		require.Error(t, c.RequireUpstream())
	})
	t.Run("OK", func(t *testing.T) {
		c, err := config.FromEnv(env(map[string]string{
			"HTTP_ADDR":          "127.0.0.1:8080",
			"DATABASE_URL":       "postgres://postgres@127.0.0.1:5432/test",
			"UPSTREAM_URL":       "http://localhost:4000/",
			"UPSTREAM_RATE":      "5/5s",
			"UPSTREAM_PAGE_SIZE": "500",
			"SYNC_START":         "2023-02-01T00:00:00Z",
			"PAYOUT_URL":         "https://pay.example",
			"LOG_LEVEL":          "debug",
			"LOG_FORMAT":         "json",
		}))
		require.NoError(t, err)
		require.Equal(t, "http://localhost:4000", c.UpstreamURL)
		require.Equal(t, config.Rate{N: 5, Per: 5 * time.Second}, c.UpstreamRate)
		require.Equal(t, 500, c.UpstreamPageSize)
		require.Equal(t, slog.LevelDebug, c.LogLevel)
		require.NoError(t, c.RequireUpstream())
	})
	t.Run("AdminTokenTrimmed", func(t *testing.T) {
		c, err := config.FromEnv(env(map[string]string{"ADMIN_TOKEN": "s3cret\n"}))
		require.NoError(t, err)
		require.Equal(t, "s3cret", c.AdminToken, "a token mounted from a file ends in a newline")
	})
	t.Run("ErrAdminTokenNeverEchoed", func(t *testing.T) {
		for _, v := range []string{"s3c ret", "  \n"} {
			_, err := config.FromEnv(env(map[string]string{"ADMIN_TOKEN": v}))
			require.ErrorContains(t, err, "ADMIN_TOKEN")
			require.NotContains(t, err.Error(), "s3c")
		}
	})
	t.Run("ErrSecretsNeverEchoed", func(t *testing.T) {
		for name, v := range map[string]string{
			"DATABASE_URL": "mysql://app:s3cret@db/x",
			"UPSTREAM_URL": "ftp://u:s3cret@upstream",
			"PAYOUT_URL":   "//u:s3cret@pay",
			// Rejected for its user info; the password still never shows.
			"PUBLIC_BASE_URL": "https://u:s3cret@api.example.com",
		} {
			_, err := config.FromEnv(env(map[string]string{name: v}))
			require.ErrorContains(t, err, name)
			require.NotContains(t, err.Error(), "s3cret", "%s leaked", name)
		}
	})
	t.Run("PublicBaseURL", func(t *testing.T) {
		c, err := config.FromEnv(env(nil))
		require.NoError(t, err)
		require.Empty(t, c.PublicBaseURL, "links are relative unless configured")
		for v, want := range map[string]string{
			"https://api.example.com/":         "https://api.example.com",
			"http://127.0.0.1:3000":            "http://127.0.0.1:3000",
			"https://example.com/scorekeeper/": "https://example.com/scorekeeper",
		} {
			c, err := config.FromEnv(env(map[string]string{"PUBLIC_BASE_URL": v}))
			require.NoError(t, err, v)
			require.Equal(t, want, c.PublicBaseURL, v)
		}
	})
	t.Run("ErrPublicBaseURL", func(t *testing.T) {
		for _, v := range []string{"api.example.com", "/api", "ftp://api.example.com", "https://", "https://api.example.com/?x=1", "https://api.example.com/#top", "https://api.example.com?"} {
			_, err := config.FromEnv(env(map[string]string{"PUBLIC_BASE_URL": v}))
			require.ErrorContains(t, err, "PUBLIC_BASE_URL", v)
		}
	})
	t.Run("RateLimitOff", func(t *testing.T) {
		c, err := config.FromEnv(env(map[string]string{"API_RATE_LIMIT": "off"}))
		require.NoError(t, err)
		require.Zero(t, c.APIRateLimit.N)
	})
	t.Run("Rates", func(t *testing.T) {
		c, err := config.FromEnv(env(map[string]string{"UPSTREAM_RATE": " 6/m ", "API_RATE_LIMIT": "OFF"}))
		require.NoError(t, err)
		require.Equal(t, config.Rate{N: 6, Per: time.Minute}, c.UpstreamRate)
		require.Equal(t, config.Rate{}, c.APIRateLimit)
	})
	// Ensure our budgets keep their bounds though the grammar takes more.
	for _, kv := range [][2]string{
		{"UPSTREAM_RATE", "off"},
		{"UPSTREAM_RATE", "5/500ms"},
		{"UPSTREAM_RATE", "100001/1s"},
		{"API_RATE_LIMIT", "5/25h"},
	} {
		t.Run("ErrBound"+kv[0], func(t *testing.T) {
			_, err := config.FromEnv(env(map[string]string{kv[0]: kv[1]}))
			require.ErrorContains(t, err, kv[0])
		})
	}
	for name, kv := range map[string]map[string]string{
		"UPSTREAM_RATE":      {"UPSTREAM_RATE": "5 per minute"},
		"UPSTREAM_PAGE_SIZE": {"UPSTREAM_PAGE_SIZE": "1001"},
		"UPSTREAM_TIMEOUT":   {"UPSTREAM_TIMEOUT": "forever"},
		"UPSTREAM_URL":       {"UPSTREAM_URL": "localhost:4000"},
		"SYNC_START":         {"SYNC_START": "yesterday"},
		"SYNC_INTERVAL":      {"SYNC_INTERVAL": "0s"},
		"HTTP_ADDR":          {"HTTP_ADDR": "3000"},
		"DATABASE_URL":       {"DATABASE_URL": "mysql://x"},
		"LOG_LEVEL":          {"LOG_LEVEL": "loud"},
		"LOG_FORMAT":         {"LOG_FORMAT": "xml"},
		"API_RATE_LIMIT":     {"API_RATE_LIMIT": "lots"},
		"PAYOUT_URL":         {"PAYOUT_URL": "https://pay.example/?key=1"},
	} {
		t.Run("Err"+name, func(t *testing.T) {
			_, err := config.FromEnv(env(kv))
			require.ErrorContains(t, err, name)
		})
	}
	t.Run("ErrReportsAll", func(t *testing.T) {
		_, err := config.FromEnv(env(map[string]string{"UPSTREAM_RATE": "x", "LOG_FORMAT": "y"}))
		require.ErrorContains(t, err, "UPSTREAM_RATE")
		require.ErrorContains(t, err, "LOG_FORMAT")
	})
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]config.Rate{
		"5/1m":    {N: 5, Per: time.Minute},
		"5/5s":    {N: 5, Per: 5 * time.Second},
		"5/m":     {N: 5, Per: time.Minute},
		"2/µs":    {N: 2, Per: time.Microsecond},
		"100/1s":  {N: 100, Per: time.Second},
		" 3/90s ": {N: 3, Per: 90 * time.Second},
		"3 / 90s": {N: 3, Per: 90 * time.Second},
		"5/.5s":   {N: 5, Per: 500 * time.Millisecond},
		"5/100ms": {N: 5, Per: 100 * time.Millisecond},
		"off":     {},
		"Off":     {},
		"0":       {},
	} {
		r, err := config.ParseRate(in)
		require.NoError(t, err, in)
		require.Equal(t, want, r, in)
	}
	for _, in := range []string{"", "5", "0/1m", "-1/1m", "5/0s", "5/-1m", "five/1m", "5/soon", "5/", "/1m", "5 per minute"} {
		_, err := config.ParseRate(in)
		require.Error(t, err, in)
	}
	require.Equal(t, "5/1m0s", config.Rate{N: 5, Per: time.Minute}.String())
	require.Equal(t, "off", config.Rate{}.String())
}
