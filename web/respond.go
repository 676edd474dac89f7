package web

import (
	"context"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/gofiber/fiber/v2"

	"scorekeeper"
)

// HeaderDataAsOf names the instant through which upstream data is synced.
const HeaderDataAsOf = "X-Data-As-Of"

// HeaderTotalCount is the number of rows a listing has across all pages.
const HeaderTotalCount = "X-Total-Count"

// sendCachable writes v as a 200 JSON response that clients may keep and
// revalidate: an ETag derived from the body, Cache-Control: no-cache (use
// it, but ask first), and X-Data-As-Of. A request whose If-None-Match
// names the same ETag gets 304 with no body.
//
// X-Data-As-Of is omitted while nothing has been synced yet: there is no
// honest instant to give, and the epoch would read as "synced long ago".
func sendCachable(c *fiber.Ctx, v any, asOf *time.Time) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	return sendCachableBody(c, body, asOf)
}

// sendCachableBody is sendCachable for a body already encoded as JSON.
// body is copied into the response: the caller may reuse it.
func sendCachableBody(c *fiber.Ctx, body []byte, asOf *time.Time) error {
	// A strong validator is right: the same body is the same bytes on every
	// replica, because it is a pure function of the stored data. The hash
	// need not resist an adversary (a client can only fool itself), only
	// tell one version of a URL's body from the next: 64 bits of xxHash do,
	// at a tenth of SHA-256's cost over a 13 KB ledger page.
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], xxhash.Sum64(body))
	etag := string(append(hex.AppendEncode(append(make([]byte, 0, 18), '"'), sum[:]), '"'))
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	if asOf != nil {
		// RFC3339 drops fractions of a second, rounding the instant down:
		// the data is never claimed fresher than it is.
		c.Set(HeaderDataAsOf, asOf.UTC().Format(time.RFC3339))
	}
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
		c.Status(fiber.StatusNotModified)
		return nil
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Status(fiber.StatusOK).Response().SetBody(body)
	return nil
}

// etagMatches reports whether an If-None-Match header value names etag,
// with the weak comparison RFC 9110 §13.1.2 prescribes for it.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	if strings.TrimSpace(header) == "*" {
		return true
	}
	for _, t := range strings.Split(header, ",") {
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == etag {
			return true
		}
	}
	return false
}

// queryContext bounds a request's database work by QueryTimeout.
func queryContext(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.UserContext(), QueryTimeout)
}

// storeError classifies a store failure. A database that cannot be
// reached or did not answer within the query deadline is unavailable (503,
// design §3: a dependency is down), not a bug; the cause stays wrapped so
// the error handler logs it while the client sees only the safe message.
// Domain errors and anything else pass through.
func storeError(ctx context.Context, err error) error {
	if err == nil || scorekeeper.ErrorCode(err) != scorekeeper.EInternal {
		return err
	}
	// Dial and connection failures are *net.OpError (or *net.DNSError for
	// an unknown host). Not net.Error: context.DeadlineExceeded is one too.
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", scorekeeper.Errorf(scorekeeper.EUnavailable, "the database did not answer in time"), err)
	case errors.As(err, &opErr), errors.As(err, &dnsErr), errors.Is(err, driver.ErrBadConn), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", scorekeeper.Errorf(scorekeeper.EUnavailable, "the database is unreachable"), err)
	}
	return err
}

// queryParams returns the request's query parameters, rejecting any not in
// allowed and any given twice: a typo or an ambiguous repeat fails loudly
// instead of being silently ignored. Values are copies, safe to keep.
func queryParams(c *fiber.Ctx, allowed ...string) (map[string]string, error) {
	params := map[string]string{}
	var err error
	c.Request().URI().QueryArgs().VisitAll(func(k, v []byte) {
		if err != nil {
			return
		}
		key := string(k)
		switch {
		case !slices.Contains(allowed, key):
			err = errInvalidf("unknown query parameter %q", truncate(key, 64))
		case hasKey(params, key):
			err = errInvalidf("query parameter %q is given more than once", key)
		default:
			params[key] = string(v)
		}
	})
	return params, err
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// truncate shortens s to at most n bytes, for echoing input in messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
