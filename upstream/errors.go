package upstream

import (
	"fmt"
	"net/http"
	"time"

	"scorekeeper/internal/httpx"
)

// Retry-After bounds. Upstream allows 5 requests a minute, so 12 s is the
// spacing that respects the budget when upstream does not say how long to
// wait; the cap keeps a garbage or hostile header from parking a sync for
// hours, and the floor keeps "0" or a past date from turning into a tight
// retry loop.
const (
	DefaultRetryAfter = 12 * time.Second
	MaxRetryAfter     = 2 * time.Minute
	minRetryAfter     = time.Second
)

// maxErrorBody caps the body kept in a StatusError: enough to read an error
// message, not enough to flood logs with an HTML error page.
const maxErrorBody = 512

// RateLimitedError is returned for a 429. The caller should wait RetryAfter
// before the next request; no data was returned or lost.
type RateLimitedError struct {
	// RetryAfter is upstream's Retry-After, or DefaultRetryAfter when it
	// sent none, bounded to [1s, MaxRetryAfter].
	RetryAfter time.Duration
}

// Error implements error.
func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("upstream: rate limited, retry after %s", e.RetryAfter)
}

// StatusError is returned for a non-2xx status other than 429.
type StatusError struct {
	StatusCode int
	// Body is the start of the response body, at most 512 bytes.
	Body string
}

// Error implements error.
func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("upstream: status %d", e.StatusCode)
	}
	return fmt.Sprintf("upstream: status %d: %s", e.StatusCode, e.Body)
}

// Temporary reports whether the same request may succeed later: true for
// 5xx and 408 (the server's trouble), false for other 4xx (our request is
// wrong, and repeating it only spends budget).
func (e *StatusError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout
}

// MalformedResponseError is returned when a 2xx body is not a page: not JSON,
// or without items or meta. It usually means a proxy or a broken deploy
// answered, so it is worth retrying, but nothing from it may be applied.
type MalformedResponseError struct {
	Reason string
}

// Error implements error.
func (e *MalformedResponseError) Error() string {
	return "upstream: malformed response: " + e.Reason
}

// parseRetryAfter reads a Retry-After header, which is either delay-seconds
// or an HTTP date (RFC 9110 §10.2.3), relative to now.
func parseRetryAfter(h string, now time.Time) time.Duration {
	d, ok := httpx.ParseRetryAfter(h, now, MaxRetryAfter)
	if !ok {
		return DefaultRetryAfter
	}
	return max(d, minRetryAfter)
}

func truncateUTF8(s string, n int) string { return httpx.TruncateUTF8(s, n) }
