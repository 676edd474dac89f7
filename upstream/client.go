// Package upstream is the client of the upstream transaction API (design §4).
//
// It fetches one page per call and does nothing else: no retries, no
// sleeping, no rate limiting. The upstream budget (5 requests a minute for
// all of scorekeeper) is enforced by whoever schedules the calls — the
// Temporal task queue — so one FetchPage call is exactly one request and a
// retry is always a decision the caller can see and count.
//
// Every item of a page is validated on its own: a malformed item is returned
// in Page.Quarantined with its raw JSON and a reason, and the rest of the page
// is still returned, so one bad item never blocks a sync.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"scorekeeper/internal/httpx"
)

// DateLayout is the upstream API's format for startDate and endDate, always
// in UTC.
const DateLayout = "2006-01-02 15:04:05"

// MaxLimit is the largest page size the upstream API serves.
const MaxLimit = 1000

// maxBodyBytes caps how much of a response body is read. A full page of 1000
// items is about 150 KiB; anything near the cap is not a page.
const maxBodyBytes = 32 << 20

// ErrInvalidRequest is wrapped by the error FetchPage returns for a
// PageRequest it refuses to send. It is a bug in the caller, never worth a
// retry.
var ErrInvalidRequest = errors.New("invalid upstream page request")

// Client fetches pages of transactions from the upstream API. It is safe for
// concurrent use.
type Client struct {
	base    *url.URL
	timeout time.Duration
	http    *http.Client
}

// New returns a Client for the API at baseURL (absolute http or https URL,
// optionally with a path prefix), giving each request at most timeout. A nil
// httpClient gets a client of its own rather than http.DefaultClient, so
// nothing else in the process can change its behaviour.
//
// The Client uses a copy of httpClient (see oneRequestPerCall): the
// caller's client and transport are left as they are.
func New(baseURL string, timeout time.Duration, httpClient *http.Client) (*Client, error) {
	u, err := httpx.ParseBaseURL(baseURL)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("upstream: timeout must be positive, got %s", timeout)
	}
	if httpClient == nil {
		httpClient = &http.Client{}
	}
	return &Client{base: u, timeout: timeout, http: oneRequestPerCall(httpClient)}, nil
}

// oneRequestPerCall returns a copy of c that sends each request exactly
// once, so that one FetchPage is one request upstream and one unit of its
// budget:
//
//   - Without keep-alives. net/http's Transport silently resends an
//     idempotent GET when a reused keep-alive connection closes before any
//     response byte arrives (transport.go, shouldRetryRequest): a request
//     upstream counted and then closed unanswered would be sent, and
//     counted, twice for one budget grant. A fresh connection is never
//     resent, and at 5 requests a minute one TCP (and TLS) handshake per
//     request costs nothing. The transport (c's, or http.DefaultTransport)
//     is cloned with DisableKeepAlives, keeping its other settings (proxy,
//     TLS, timeouts). A RoundTripper that is not an *http.Transport cannot
//     be configured so and is used as it is (it must not resend requests
//     itself); FetchPage still marks every request Close, so no connection
//     one of its requests used is kept for reuse.
//   - Without redirects: following one would be a second request. A 3xx is
//     returned as it is, a *StatusError.
func oneRequestPerCall(c *http.Client) *http.Client {
	cc := *c
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	if t, ok := rt.(*http.Transport); ok {
		t = t.Clone()
		t.DisableKeepAlives = true
		cc.Transport = t
	}
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// PageRequest selects one page of the transactions created in a time window.
type PageRequest struct {
	// Start is the first instant of the window, inclusive.
	Start time.Time
	// End is the last instant of the window, inclusive.
	End time.Time
	// Page is the 1-based page number.
	Page int
	// Limit is the page size, 1 to MaxLimit.
	Limit int
}

// validate rejects a request before it costs a unit of the upstream budget.
func (r PageRequest) validate() error {
	switch {
	case r.Page < 1:
		return fmt.Errorf("%w: page %d, want ≥ 1", ErrInvalidRequest, r.Page)
	case r.Limit < 1 || r.Limit > MaxLimit:
		return fmt.Errorf("%w: limit %d, want 1 to %d", ErrInvalidRequest, r.Limit, MaxLimit)
	case r.Start.IsZero() || r.End.IsZero():
		return fmt.Errorf("%w: start and end are required", ErrInvalidRequest)
	case r.Start.After(r.End):
		return fmt.Errorf("%w: start %s is after end %s", ErrInvalidRequest, r.Start.UTC().Format(time.RFC3339Nano), r.End.UTC().Format(time.RFC3339Nano))
	case r.End.UTC().Year() > 9999:
		// DateLayout has four year digits; a later year would be sent as
		// something upstream cannot parse.
		return fmt.Errorf("%w: end %s is beyond year 9999", ErrInvalidRequest, r.End.UTC().Format(time.RFC3339))
	}
	return nil
}

// query renders the request as upstream expects it. Upstream's dates have
// one-second resolution, so the window is widened to whole seconds: Start
// rounds down and End rounds up. Widening is always safe (items are
// deduplicated by id) where narrowing could skip items created within the
// last fraction of a second of End.
//
// Spaces are sent as %20, not the form-style "+" of url.Values.Encode: %20
// means a space to every decoder, "+" only to form decoders.
func (r PageRequest) query() string {
	start := r.Start.UTC().Truncate(time.Second)
	end := r.End.UTC()
	if t := end.Truncate(time.Second); !t.Equal(end) {
		end = t.Add(time.Second)
	}
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	return "startDate=" + esc(start.Format(DateLayout)) +
		"&endDate=" + esc(end.Format(DateLayout)) +
		"&page=" + strconv.Itoa(r.Page) +
		"&limit=" + strconv.Itoa(r.Limit)
}

// Timeout is the longest one request takes, answered or not.
func (c *Client) Timeout() time.Duration { return c.timeout }

// FetchPage requests one page of transactions. It returns:
//   - the page, with malformed items in Page.Quarantined, on 2xx;
//   - *RateLimitedError on 429;
//   - *StatusError on any other non-2xx status;
//   - *MalformedResponseError when a 2xx body is not a page;
//   - a wrapped transport or context error otherwise; a timeout satisfies
//     errors.Is(err, context.DeadlineExceeded);
//   - an error wrapping ErrInvalidRequest, without sending anything, for an
//     invalid req.
func (c *Client) FetchPage(ctx context.Context, req PageRequest) (*Page, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	u := c.base.JoinPath("transactions")
	u.RawQuery = req.query()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("upstream: build request: %w", err)
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Close = true // one connection per request: see oneRequestPerCall

	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("upstream: fetch page %d: %w", req.Page, err)
	}
	defer func() { _ = resp.Body.Close() }() // the connection is not reused

	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, &RateLimitedError{RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, &StatusError{StatusCode: resp.StatusCode, Body: truncateUTF8(string(body), maxErrorBody)}
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		// A timeout while reading the body is still a timeout: the
		// wrapped error keeps context.DeadlineExceeded visible.
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return nil, fmt.Errorf("upstream: read page %d: %w", req.Page, err)
	}
	if len(body) > maxBodyBytes {
		return nil, &MalformedResponseError{Reason: fmt.Sprintf("body is larger than %d bytes", maxBodyBytes)}
	}
	return decodePage(body)
}
