// Package config reads and validates the service's configuration from the
// environment (design §7). Every variable is checked at start; an error
// names the variable and says what is wrong with its value.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"scorekeeper"
	"scorekeeper/internal/httpx"
)

// Rate is a request budget: N requests per Per. The zero Rate is no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// String renders r in the variables' format, e.g. "5/1m0s", or "off".
func (r Rate) String() string {
	if r == (Rate{}) {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.N, r.Per)
}

// ParseRate parses a request budget written "N/duration", the one grammar
// of UPSTREAM_RATE, API_RATE_LIMIT and the mock's MOCK_RATE:
//
//   - N is a whole number of requests, at least 1;
//   - the duration is anything time.ParseDuration reads that is positive
//     ("1m", "5s", "90s", "500ms"), or a bare unit meaning one of it
//     ("5/m" is "5/1m");
//   - spaces around either part are ignored;
//   - "off" (any case) and "0" are the zero Rate: no limit.
//
// Each variable then bounds what it takes (checkBudget for ours).
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "0" || strings.EqualFold(s, "off") {
		return Rate{}, nil
	}
	num, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("want N/duration such as 5/1m, or off, got %q", s)
	}
	num, per = strings.TrimSpace(num), strings.TrimSpace(per)
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 {
		return Rate{}, fmt.Errorf("want a positive request count before the slash, got %q", num)
	}
	if r, _ := utf8.DecodeRuneInString(per); unicode.IsLetter(r) {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("want a positive duration after the slash, got %q", per)
	}
	return Rate{N: n, Per: d}, nil
}

// checkBudget bounds the budgets UPSTREAM_RATE and API_RATE_LIMIT take:
// 1 to 100000 requests per 1s to 24h. Smaller windows are for the mock,
// whose tests run in scaled time.
func (r Rate) checkBudget() error {
	switch {
	case r.N < 1 || r.N > 100000:
		return fmt.Errorf("want a request count from 1 to 100000, got %d", r.N)
	case r.Per < time.Second || r.Per > 24*time.Hour:
		return fmt.Errorf("want a duration from 1s to 24h after the slash, got %s", r.Per)
	}
	return nil
}

// Config is the whole configuration of every command.
type Config struct {
	HTTPAddr          string
	DatabaseURL       string
	TemporalAddress   string
	TemporalNamespace string
	TemporalTaskQueue string
	// Temporal is the rest of the Temporal connection (TLS, client
	// certificate, API key), from the Temporal CLI's variables and TOML
	// profile, as TemporalAddress and TemporalNamespace are when
	// TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE are unset. Never printed:
	// see TemporalClient.
	Temporal TemporalClient
	// UpstreamURL is the transaction API; "" means "use the mock" in dev
	// and is an error for the worker.
	UpstreamURL      string
	UpstreamRate     Rate
	UpstreamPageSize int
	UpstreamTimeout  time.Duration
	SyncStart        time.Time
	SyncInterval     time.Duration
	SyncOverlap      time.Duration
	// SyncLateCheck is how late coverage checks windows read before late
	// items could all be visible: auto (probe while probes mostly find
	// nothing new), probe, or rescan. SYNC_LATE_CHECK.
	SyncLateCheck string
	// PayoutURL is the payout provider; "" as for UpstreamURL.
	PayoutURL  string
	AdminToken string
	// PublicBaseURL is the absolute URL clients reach the REST API at,
	// e.g. https://api.example.com; next-page links are absolute on it.
	// "" (the default) makes them relative. PUBLIC_BASE_URL, trailing
	// slash trimmed.
	PublicBaseURL string
	// APIRateLimit is the per-client limit on the public read routes (per
	// web process); zero N means off. API_RATE_LIMIT, "N/duration" or "off".
	APIRateLimit Rate
	MockAPIAddr  string
	// MetricsAddr is where the worker serves /metrics and /readyz.
	MetricsAddr string
	LogLevel    slog.Level
	LogFormat   string
}

// Defaults returns the configuration with every default of design §7.
func Defaults() Config {
	return Config{
		HTTPAddr:          ":3000",
		DatabaseURL:       "file:data/scorekeeper.db",
		TemporalAddress:   "127.0.0.1:7233",
		TemporalNamespace: "default",
		TemporalTaskQueue: "scorekeeper",
		UpstreamRate:      Rate{N: 5, Per: time.Minute},
		UpstreamPageSize:  1000,
		UpstreamTimeout:   10 * time.Second,
		SyncStart:         time.Unix(0, 0).UTC(),
		SyncInterval:      scorekeeper.DefaultSyncInterval,
		SyncOverlap:       2 * time.Minute,
		SyncLateCheck:     "auto",
		APIRateLimit:      Rate{N: 100, Per: time.Second},
		MockAPIAddr:       ":4000",
		MetricsAddr:       ":9464",
		LogLevel:          slog.LevelInfo,
		LogFormat:         "text",
	}
}

// FromEnv reads the configuration through getenv (os.Getenv in main),
// starting from Defaults. It reports every bad variable at once.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Defaults()
	var errs []error
	bad := func(name, val string, err error) {
		switch name {
		case "DATABASE_URL", "UPSTREAM_URL", "PAYOUT_URL", "PUBLIC_BASE_URL":
			val = RedactURL(val) // a rejected URL may still hold a password
		case "ADMIN_TOKEN":
			errs = append(errs, fmt.Errorf("%s: %w", name, err)) // never echoed
			return
		}
		errs = append(errs, fmt.Errorf("%s=%q: %w", name, val, err))
	}
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	addr := func(name string, dst *string) {
		v := getenv(name)
		if v == "" {
			return
		}
		if _, port, err := net.SplitHostPort(v); err != nil {
			bad(name, v, errors.New("want host:port or :port"))
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad(name, v, errors.New("port must be 0-65535"))
		} else {
			*dst = v
		}
	}
	// The clients' own parser, so a URL the worker would refuse at start
	// is refused here, with the variable's name and the password redacted.
	baseURL := func(name string, dst *string) {
		v := getenv(name)
		if v == "" {
			return
		}
		if _, err := httpx.ParseBaseURL(v); err != nil {
			bad(name, v, errors.New("want an absolute http(s) URL, without query or fragment"))
			return
		}
		*dst = strings.TrimRight(v, "/")
	}
	dur := func(name string, dst *time.Duration, min, max time.Duration) {
		v := getenv(name)
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			bad(name, v, errors.New("want a duration such as 10s or 1m"))
		} else if d < min || d > max {
			bad(name, v, fmt.Errorf("must be between %s and %s", min, max))
		} else {
			*dst = d
		}
	}

	addr("HTTP_ADDR", &c.HTTPAddr)
	str("DATABASE_URL", &c.DatabaseURL)
	if v := c.DatabaseURL; !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") && !strings.HasPrefix(v, "file:") {
		bad("DATABASE_URL", v, errors.New("want postgres://… or file:path (SQLite)"))
	}
	// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the connection (TLS, API
	// key), from the Temporal CLI's profile and variables.
	errs = append(errs, loadTemporal(getenv, &c)...)
	str("TEMPORAL_TASK_QUEUE", &c.TemporalTaskQueue)
	baseURL("UPSTREAM_URL", &c.UpstreamURL)
	if v := getenv("UPSTREAM_RATE"); v != "" {
		r, err := ParseRate(v)
		if err == nil {
			err = r.checkBudget() // off included: the worker needs a budget
		}
		if err != nil {
			bad("UPSTREAM_RATE", v, err)
		} else {
			c.UpstreamRate = r
		}
	}
	if v := getenv("UPSTREAM_PAGE_SIZE"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 1000 {
			bad("UPSTREAM_PAGE_SIZE", v, errors.New("want a whole number from 1 to 1000"))
		} else {
			c.UpstreamPageSize = n
		}
	}
	dur("UPSTREAM_TIMEOUT", &c.UpstreamTimeout, 100*time.Millisecond, 5*time.Minute)
	if v := getenv("SYNC_START"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err != nil {
			bad("SYNC_START", v, errors.New("want an RFC 3339 time such as 2023-02-01T00:00:00Z"))
		} else {
			c.SyncStart = t.UTC()
		}
	}
	dur("SYNC_INTERVAL", &c.SyncInterval, time.Second, 24*time.Hour)
	dur("SYNC_OVERLAP", &c.SyncOverlap, 0, 24*time.Hour)
	switch v := getenv("SYNC_LATE_CHECK"); v {
	case "":
	case "auto", "probe", "rescan":
		c.SyncLateCheck = v
	default:
		bad("SYNC_LATE_CHECK", v, errors.New("want auto, probe or rescan"))
	}
	baseURL("PAYOUT_URL", &c.PayoutURL)
	baseURL("PUBLIC_BASE_URL", &c.PublicBaseURL)
	if u, err := url.Parse(c.PublicBaseURL); err == nil && u.User != nil {
		// Links are the base + "/api/…?…" (baseURL already refused a query
		// or fragment, which would break them); user info would hand
		// credentials to every client that follows one.
		bad("PUBLIC_BASE_URL", c.PublicBaseURL, errors.New("want scheme://host[:port][/path], without user info, query or fragment"))
	}
	if v := getenv("ADMIN_TOKEN"); v != "" {
		// A token mounted from a file usually ends in a newline: trimmed,
		// rather than locking everyone out. Inside it, whitespace or
		// control characters could never be sent in a header: rejected.
		t := strings.TrimSpace(v)
		switch {
		case t == "":
			bad("ADMIN_TOKEN", v, errors.New("is only whitespace; unset it to leave the admin routes open, or set a token"))
		case strings.IndexFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
			bad("ADMIN_TOKEN", v, errors.New("contains whitespace or control characters, which an Authorization header cannot carry"))
		default:
			c.AdminToken = t
		}
	}
	if v := getenv("API_RATE_LIMIT"); v != "" {
		r, err := ParseRate(v)
		if err == nil && r != (Rate{}) {
			err = r.checkBudget()
		}
		if err != nil {
			bad("API_RATE_LIMIT", v, err)
		} else {
			c.APIRateLimit = r
		}
	}
	addr("MOCKAPI_ADDR", &c.MockAPIAddr)
	addr("METRICS_ADDR", &c.MetricsAddr)
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			bad("LOG_LEVEL", v, errors.New("want debug, info, warn or error"))
		}
	}
	if v := getenv("LOG_FORMAT"); v != "" {
		if v != "text" && v != "json" {
			bad("LOG_FORMAT", v, errors.New("want text or json"))
		} else {
			c.LogFormat = v
		}
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return c, nil
}

// RequireUpstream checks the variables a real worker cannot run without.
func (c Config) RequireUpstream() error {
	var errs []error
	if c.UpstreamURL == "" {
		errs = append(errs, errors.New("UPSTREAM_URL is required by the worker (the mock is only wired in by `scorekeeper dev`)"))
	}
	if c.PayoutURL == "" {
		errs = append(errs, errors.New("PAYOUT_URL is required by the worker (the mock is only wired in by `scorekeeper dev`)"))
	}
	return errors.Join(errs...)
}
