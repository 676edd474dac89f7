package mockapi

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"scorekeeper"
	"scorekeeper/config"
)

// MaxUsers is the largest Config.Users: user ids are distinct 6-digit
// numbers, so there are only a million of them.
const MaxUsers = 1_000_000

// MaxPageSize is the largest page the transaction API returns; a larger
// limit is capped to it, as upstream does.
const MaxPageSize = 1000

// MaxBigItemBytes is the largest Config.BigItemBytes: a guard against
// exhausting memory by mistake, well above the 32 MiB body cap of
// scorekeeper's upstream client.
const MaxBigItemBytes = 256 << 20

// MaxLiveBacklog bounds the live items New would have to generate at once
// for a Start far in the past: a guard against exhausting memory by
// mistake (e.g. a fixed MOCK_START with the real clock).
const MaxLiveBacklog = 20_000_000

// DefaultPageSize is the page size when a request has no limit parameter.
// It is deliberately small (like the paginator upstream uses) so that a
// client forgetting limit=1000 is noticed rather than silently served.
const DefaultPageSize = 10

// Config describes the data the mock generates and how it misbehaves. The
// zero value is not useful: start from DefaultConfig or ConfigFromEnv.
//
// Every fraction (the *Rate fields except LiveRate and RateLimit, and
// PageDuplicates) is a probability in [0, 1]. Which items are late,
// malformed, duplicated or rejected is decided by hashing the item (or user)
// with Seed, so the same Config always yields the same data; request-level
// faults (FailRate, SlowRate, PayoutFailRate, PayoutLatency) draw from a
// generator seeded with Seed, so they repeat for the same sequence of
// requests. DropRate, ShuffleTies and PageDuplicates draw from a second
// generator seeded with Seed, advanced once per GET /transactions request
// the rate limit admits, so they too repeat for the same sequence of
// requests, and turning one on changes none of the other draws.
type Config struct {
	// Seed makes every generated value reproducible. MOCK_SEED.
	Seed int64
	// Users is how many distinct user ids (6-digit, zero-padded strings such
	// as "074092") transactions are spread over, 1..MaxUsers. MOCK_USERS.
	Users int
	// Transactions is how many valid historical transactions exist at Start,
	// spread over [Start-History, Start]. MOCK_TRANSACTIONS.
	Transactions int
	// History is how far back from Start the historical transactions reach.
	// MOCK_HISTORY.
	History time.Duration
	// LiveRate is how many valid transactions are appended per minute after
	// Start, visible as the clock passes their createdAt; 0 disables live
	// data. Minutes are generated as the clock reaches them, so memory
	// grows with LiveRate × minutes since Start (New refuses a Start so far
	// back that this would exceed MaxLiveBacklog items at once).
	// MOCK_LIVE_RATE.
	LiveRate int
	// LiveFor stops live data after this long from Start, rounded up to
	// whole minutes (zero: never), so a test can watch a stream stop.
	// MOCK_LIVE_FOR.
	LiveFor time.Duration
	// RateLimit requests per RateWindow are accepted from all clients
	// together on GET /transactions (a sliding window); beyond that the
	// answer is 429 with Retry-After. RateLimit <= 0 disables the limit.
	// MOCK_RATE, written "N/duration" (default "5/1m") or "off", as
	// config.ParseRate reads it.
	RateLimit int
	// RateWindow is the length of the rate limit's sliding window. MOCK_RATE.
	RateWindow time.Duration
	// DuplicateRate is the fraction of items that are served twice in the
	// same window (at two positions of the listing, so usually on two
	// pages). The copies count in meta.totalItems. MOCK_DUPLICATE_RATE.
	DuplicateRate float64
	// LateRate is the fraction of items that become visible only LateDelay
	// after their createdAt. MOCK_LATE_RATE.
	LateRate float64
	// LateDelay is how long late items stay hidden. MOCK_LATE_DELAY.
	LateDelay time.Duration
	// PayoutShare is the share of valid transactions that are payouts;
	// zero means the default 15% (earned and spent share the rest 60:25).
	// Benchmarks in scaled time lower it with the scale, so the payout
	// work per second stays what a real minute would bring.
	// MOCK_PAYOUT_SHARE.
	PayoutShare float64
	// Ordered lists a window's items by createdAt (ties in a seeded
	// order) instead of a seeded non-chronological order. MOCK_ORDERED
	// (true or false).
	Ordered bool
	// ShuffleTies (only with Ordered) lists the items of equal createdAt in
	// a fresh random order on every request, as `ORDER BY created_at
	// OFFSET n` does in a SQL database: no order among ties, and none kept
	// between requests. So when a page boundary falls among items of equal
	// createdAt, an item of that instant may be on neither page or on both.
	// Only the order changes: each page still has its position range of
	// the listing, and meta is unchanged. MOCK_SHUFFLE_TIES (true or false).
	ShuffleTies bool
	// NewestFirst (only with Ordered) lists a window's items newest first,
	// as `ORDER BY created_at DESC OFFSET n` does: a listing not in the
	// order a client may exploit, which with ShuffleTies keeps no order
	// among ties between requests either, so offsets inside a tie lose
	// an item and repeat another. MOCK_NEWEST_FIRST (true or false).
	NewestFirst bool
	// WholeSeconds makes every createdAt a whole second, as an upstream
	// storing second-precision timestamps serves it: each generated instant
	// is truncated to the second, so many items share a createdAt. The
	// truncated instant is the one served, the one startDate/endDate select
	// by, and the one in the ground truth (Transactions, Malformed, Truth);
	// Start is truncated to the second too. The rendering keeps its form,
	// with zero milliseconds ("2023-03-16T12:00:05.000Z"). The items are
	// otherwise the same as with millisecond timestamps.
	// MOCK_TIMESTAMPS=s (ms, the default, is false).
	WholeSeconds bool
	// PageCap is the most items the server puts on a page, whatever limit
	// was asked (0: no cap beyond MaxPageSize). The page size in effect,
	// min(limit, PageCap), is what meta.itemsPerPage says and what
	// meta.totalPages and the page's position range are computed with.
	// MOCK_PAGE_CAP (1..MaxPageSize).
	PageCap int
	// PageDuplicates is the fraction of served pages that carry one of
	// their items a second time: right after the original or at the
	// page's end, or (a third of them) in place of a later item of the
	// page, not right after the original nor after another item of its
	// instant. The copy takes a position on the page: on a full page the
	// page's last item of the listing is left out, or the item it
	// replaced (that request serves it on neither this page nor the
	// next); on a shorter (last) page the copy is one more entry or
	// replaces one. meta.totalItems and meta.totalPages are the
	// listing's, not counting the copy (totalItems counts the window's
	// entries, distinct items plus DuplicateRate copies); meta.itemCount
	// counts the entries on the page, copy included. A page with no item,
	// or a full page of one item, carries no copy. MOCK_PAGE_DUPLICATES.
	PageDuplicates float64
	// BigItemBytes, when positive, adds one malformed item of about that
	// many bytes (MalformedBig: a valid shape with an unknown type and a
	// huge extra string field) to the history, at a seeded instant within
	// it, whatever MalformedRate is. It is listed like any other item
	// (counted in meta.totalItems, subject to LateRate and DuplicateRate)
	// and is part of the ground truth of malformed items (Malformed,
	// MalformedCount). MOCK_BIG_ITEM_BYTES (0..MaxBigItemBytes).
	BigItemBytes int
	// ClockSkew is how far the mock's clock for data runs behind the real
	// clock (Now): an item becomes visible ClockSkew after its createdAt
	// (plus LateDelay if late), live data is generated ClockSkew later, a
	// zero Start is the skewed Now, and the ground truth (Truth,
	// Transactions, Malformed, counts) is taken at the skewed clock. The
	// rate limit and its request times keep the real clock.
	// MOCK_CLOCK_SKEW.
	ClockSkew time.Duration
	// DropRate is the fraction of accepted GET /transactions requests that
	// are counted by the rate limit and then get no answer at all: the
	// connection is closed before a byte of response is written (see
	// Server.DroppedRequests). MOCK_DROP_RATE.
	DropRate float64
	// MalformedRate is the fraction of generated valid items that are
	// accompanied by one malformed item (so malformed items come in addition
	// to Transactions and LiveRate). MOCK_MALFORMED_RATE.
	MalformedRate float64
	// MalformedKinds restricts which kinds of malformed items are generated;
	// nil or empty means AllMalformedKinds. MOCK_MALFORMED_KINDS (comma list).
	MalformedKinds []MalformedKind
	// FailRate is the fraction of accepted GET /transactions requests that
	// answer 503. They consume rate budget, as a real server's would.
	// MOCK_FAIL_RATE.
	FailRate float64
	// SlowRate is the fraction of GET /transactions requests delayed by
	// SlowDelay before answering. MOCK_SLOW_RATE.
	SlowRate float64
	// SlowDelay is how long a slow request waits. MOCK_SLOW_DELAY.
	SlowDelay time.Duration
	// PayoutFailRate is the fraction of POST /payouts requests that fail
	// transiently (503, or 429 with Retry-After: 1) before anything is paid
	// or recorded. MOCK_PAYOUT_FAIL_RATE.
	PayoutFailRate float64
	// PayoutRejectUsers always get 422 account_closed. MOCK_PAYOUT_REJECT_USERS
	// (comma list).
	PayoutRejectUsers []string
	// PayoutRejectRate is the fraction of users (picked by hashing the user
	// id with Seed, so stable) whose payouts are rejected with 422
	// account_closed. MOCK_PAYOUT_REJECT_RATE.
	PayoutRejectRate float64
	// PayoutLatency is the upper bound of a random delay added to every
	// POST /payouts. MOCK_PAYOUT_LATENCY.
	PayoutLatency time.Duration
	// Start anchors the data: historical items end at Start, live items
	// begin there. The zero value means Now() (less ClockSkew) at New. It
	// is truncated to the millisecond, the precision of createdAt (to the
	// second with WholeSeconds). MOCK_START (RFC 3339).
	Start time.Time
	// Now is the clock used for visibility, the rate limit and live data;
	// nil means time.Now. Tests inject a fake clock here.
	Now func() time.Time
}

// DefaultConfig returns a mock that behaves like a healthy but imperfect
// upstream: a day of history, a trickle of live data, the real 5/1m budget,
// and a few duplicates, late and malformed items. Random 5xx, slow answers
// and payout failures are off by default so that a fresh `scorekeeper dev`
// is calm; turn them on with the MOCK_* variables or inject faults.
func DefaultConfig() Config {
	return Config{
		Seed:          1,
		Users:         200,
		Transactions:  5000,
		History:       24 * time.Hour,
		LiveRate:      60,
		RateLimit:     5,
		RateWindow:    time.Minute,
		DuplicateRate: 0.01,
		LateRate:      0.02,
		// Within the default SYNC_OVERLAP of 2m, so a correct client
		// catches every late item.
		LateDelay:     90 * time.Second,
		MalformedRate: 0.005,
		SlowDelay:     2 * time.Second,
	}
}

// ConfigFromEnv returns DefaultConfig overridden by the MOCK_* variables
// that getenv reports as set (non-empty). A bad value is an error naming
// its variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	var errs []error
	get := func(name string, parse func(string) error) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		if err := parse(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	}
	get("MOCK_SEED", func(v string) (err error) { cfg.Seed, err = strconv.ParseInt(v, 10, 64); return stripNumErr(err) })
	get("MOCK_USERS", func(v string) error { return parseIntRange(v, 1, MaxUsers, &cfg.Users) })
	get("MOCK_TRANSACTIONS", func(v string) error { return parseIntRange(v, 0, math.MaxInt32, &cfg.Transactions) })
	get("MOCK_HISTORY", func(v string) error { return parseDuration(v, &cfg.History) })
	get("MOCK_LIVE_RATE", func(v string) error { return parseIntRange(v, 0, 10_000_000, &cfg.LiveRate) })
	get("MOCK_RATE", func(v string) error {
		r, err := config.ParseRate(v)
		cfg.RateLimit, cfg.RateWindow = r.N, r.Per
		return err
	})
	get("MOCK_DUPLICATE_RATE", func(v string) error { return parseFraction(v, &cfg.DuplicateRate) })
	get("MOCK_LATE_RATE", func(v string) error { return parseFraction(v, &cfg.LateRate) })
	get("MOCK_LATE_DELAY", func(v string) error { return parseDuration(v, &cfg.LateDelay) })
	get("MOCK_LIVE_FOR", func(v string) error { return parseDuration(v, &cfg.LiveFor) })
	get("MOCK_PAYOUT_SHARE", func(v string) error { return parseFraction(v, &cfg.PayoutShare) })
	get("MOCK_ORDERED", func(v string) error { return parseBool(v, &cfg.Ordered) })
	get("MOCK_SHUFFLE_TIES", func(v string) error { return parseBool(v, &cfg.ShuffleTies) })
	get("MOCK_NEWEST_FIRST", func(v string) error { return parseBool(v, &cfg.NewestFirst) })
	get("MOCK_TIMESTAMPS", func(v string) error {
		switch v {
		case "ms":
			cfg.WholeSeconds = false
		case "s":
			cfg.WholeSeconds = true
		default:
			return errors.New("want ms or s")
		}
		return nil
	})
	get("MOCK_PAGE_CAP", func(v string) error { return parseIntRange(v, 1, MaxPageSize, &cfg.PageCap) })
	get("MOCK_PAGE_DUPLICATES", func(v string) error { return parseFraction(v, &cfg.PageDuplicates) })
	get("MOCK_BIG_ITEM_BYTES", func(v string) error { return parseIntRange(v, 0, MaxBigItemBytes, &cfg.BigItemBytes) })
	get("MOCK_CLOCK_SKEW", func(v string) error { return parseDuration(v, &cfg.ClockSkew) })
	get("MOCK_DROP_RATE", func(v string) error { return parseFraction(v, &cfg.DropRate) })
	get("MOCK_MALFORMED_RATE", func(v string) error { return parseFraction(v, &cfg.MalformedRate) })
	get("MOCK_MALFORMED_KINDS", func(v string) error {
		kinds, err := ParseMalformedKinds(v)
		cfg.MalformedKinds = kinds
		return err
	})
	get("MOCK_FAIL_RATE", func(v string) error { return parseFraction(v, &cfg.FailRate) })
	get("MOCK_SLOW_RATE", func(v string) error { return parseFraction(v, &cfg.SlowRate) })
	get("MOCK_SLOW_DELAY", func(v string) error { return parseDuration(v, &cfg.SlowDelay) })
	get("MOCK_PAYOUT_FAIL_RATE", func(v string) error { return parseFraction(v, &cfg.PayoutFailRate) })
	get("MOCK_PAYOUT_REJECT_USERS", func(v string) error {
		cfg.PayoutRejectUsers = nil
		for _, u := range strings.Split(v, ",") {
			u = strings.TrimSpace(u)
			if u == "" {
				continue
			}
			if !scorekeeper.ValidUserID(u) {
				return fmt.Errorf("%q is not a valid user id", u)
			}
			cfg.PayoutRejectUsers = append(cfg.PayoutRejectUsers, u)
		}
		return nil
	})
	get("MOCK_PAYOUT_REJECT_RATE", func(v string) error { return parseFraction(v, &cfg.PayoutRejectRate) })
	get("MOCK_PAYOUT_LATENCY", func(v string) error { return parseDuration(v, &cfg.PayoutLatency) })
	get("MOCK_START", func(v string) (err error) {
		cfg.Start, err = time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return errors.New("want an RFC 3339 time such as 2023-03-16T12:00:00Z")
		}
		return nil
	})
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return cfg, cfg.Validate()
}

// Validate reports the first field that is out of range, named by its
// environment variable so the message is useful to an operator too.
func (c Config) Validate() error {
	switch {
	case c.Users < 1 || c.Users > MaxUsers:
		return fmt.Errorf("MOCK_USERS: %d is not in 1..%d", c.Users, MaxUsers)
	case c.Transactions < 0:
		return fmt.Errorf("MOCK_TRANSACTIONS: %d is negative", c.Transactions)
	case c.History < 0:
		return fmt.Errorf("MOCK_HISTORY: %s is negative", c.History)
	case c.LiveRate < 0:
		return fmt.Errorf("MOCK_LIVE_RATE: %d is negative", c.LiveRate)
	case c.RateLimit > 0 && c.RateWindow <= 0:
		return fmt.Errorf("MOCK_RATE: window %s must be positive", c.RateWindow)
	case c.LateDelay < 0:
		return fmt.Errorf("MOCK_LATE_DELAY: %s is negative", c.LateDelay)
	case c.SlowDelay < 0:
		return fmt.Errorf("MOCK_SLOW_DELAY: %s is negative", c.SlowDelay)
	case c.PayoutLatency < 0:
		return fmt.Errorf("MOCK_PAYOUT_LATENCY: %s is negative", c.PayoutLatency)
	case c.ShuffleTies && !c.Ordered:
		return errors.New("MOCK_SHUFFLE_TIES: needs MOCK_ORDERED=true (the unordered listing has no ties to shuffle)")
	case c.NewestFirst && !c.Ordered:
		return errors.New("MOCK_NEWEST_FIRST: needs MOCK_ORDERED=true (the unordered listing has no newest first)")
	case c.PageCap < 0 || c.PageCap > MaxPageSize:
		return fmt.Errorf("MOCK_PAGE_CAP: %d is not in 1..%d (or 0, no cap)", c.PageCap, MaxPageSize)
	case c.BigItemBytes < 0 || c.BigItemBytes > MaxBigItemBytes:
		return fmt.Errorf("MOCK_BIG_ITEM_BYTES: %d is not in 0..%d", c.BigItemBytes, MaxBigItemBytes)
	case c.ClockSkew < 0:
		return fmt.Errorf("MOCK_CLOCK_SKEW: %s is negative", c.ClockSkew)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"MOCK_DUPLICATE_RATE", c.DuplicateRate},
		{"MOCK_LATE_RATE", c.LateRate},
		{"MOCK_MALFORMED_RATE", c.MalformedRate},
		{"MOCK_FAIL_RATE", c.FailRate},
		{"MOCK_SLOW_RATE", c.SlowRate},
		{"MOCK_PAYOUT_FAIL_RATE", c.PayoutFailRate},
		{"MOCK_PAYOUT_REJECT_RATE", c.PayoutRejectRate},
		{"MOCK_PAYOUT_SHARE", c.PayoutShare},
		{"MOCK_PAGE_DUPLICATES", c.PageDuplicates},
		{"MOCK_DROP_RATE", c.DropRate},
	} {
		if !(f.v >= 0 && f.v <= 1) { // also catches NaN
			return fmt.Errorf("%s: %v is not a fraction in [0, 1]", f.name, f.v)
		}
	}
	for _, k := range c.MalformedKinds {
		if !k.valid() {
			return fmt.Errorf("MOCK_MALFORMED_KINDS: unknown kind %q", k)
		}
	}
	for _, u := range c.PayoutRejectUsers {
		if !scorekeeper.ValidUserID(u) {
			return fmt.Errorf("MOCK_PAYOUT_REJECT_USERS: %q is not a valid user id", u)
		}
	}
	return nil
}

func parseIntRange(v string, lo, hi int, dst *int) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("want an integer in %d..%d", lo, hi)
	}
	*dst = n
	return nil
}

func parseFraction(v string, dst *float64) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return errors.New("want a fraction in [0, 1], such as 0.05")
	}
	*dst = f
	return nil
}

func parseBool(v string, dst *bool) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true or false")
	}
	*dst = b
	return nil
}

func parseDuration(v string, dst *time.Duration) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return errors.New("want a non-negative duration such as 90s or 2m")
	}
	*dst = d
	return nil
}

// stripNumErr drops strconv's wrapping, which repeats the value the caller
// already names.
func stripNumErr(err error) error {
	if err != nil {
		return errors.New("want an integer")
	}
	return nil
}
