// Package httpx holds the small HTTP helpers the service's clients (the
// upstream transaction API, the payout provider) and servers share.
package httpx

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP
// date (relative to now). ok is false when the header is missing or
// unreadable; the delay is at most max and never negative.
func ParseRetryAfter(h string, now time.Time, max time.Duration) (d time.Duration, ok bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(max/time.Second) {
			return max, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(maxDuration(t.Sub(now), 0), max), true
	}
	return 0, false
}

func maxDuration(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// TruncateUTF8 cuts s to at most n bytes without splitting a UTF-8
// sequence, for quoting response bodies in errors.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for i := 0; i < utf8.UTFMax && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
