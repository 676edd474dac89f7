package web

import (
	"net/url"
	"slices"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"scorekeeper"
	"scorekeeper/db"
)

// Paging limits of GET /api/payouts.
const (
	// DefaultPayoutLimit is the page size when the query names no limit.
	DefaultPayoutLimit = 1000
	// MaxPayoutLimit is the largest limit accepted; it bounds the memory
	// and time one request can cost.
	MaxPayoutLimit = 10000
)

// payoutStatuses and payoutSorts are the accepted values of the status and
// sort query parameters; the first of each is the default.
var (
	payoutStatuses = []string{"requested", "pending", "paid", "failed"}
	payoutSorts    = []string{"userId", "-payoutAmount"}
)

// payoutResponse is one row of GET /api/payouts.
type payoutResponse struct {
	UserID       string             `json:"userId"`
	PayoutAmount scorekeeper.Amount `json:"payoutAmount"`
}

func toPayoutResponses(ts []db.PayoutTotal) []payoutResponse {
	// make, not a nil slice: an empty page is [] in JSON, not null.
	out := make([]payoutResponse, len(ts))
	for i, t := range ts {
		out[i] = payoutResponse{UserID: t.UserID, PayoutAmount: t.Amount}
	}
	return out
}

// parsePayoutFilter validates the query of GET /api/payouts.
func parsePayoutFilter(c *fiber.Ctx) (db.PayoutFilter, map[string]string, error) {
	q, err := queryParams(c, "status", "limit", "after", "sort")
	if err != nil {
		return db.PayoutFilter{}, nil, err
	}
	f := db.PayoutFilter{Status: payoutStatuses[0], Sort: payoutSorts[0], Limit: DefaultPayoutLimit}
	if v, ok := q["status"]; ok {
		if !slices.Contains(payoutStatuses, v) {
			return f, nil, errInvalidf("status must be one of requested, pending, paid or failed")
		}
		f.Status = v
	}
	if v, ok := q["sort"]; ok {
		if !slices.Contains(payoutSorts, v) {
			return f, nil, errInvalidf("sort must be userId or -payoutAmount")
		}
		f.Sort = v
	}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v)
		// Digits only: Atoi would also take "+5" and "-0".
		if err != nil || !isDigits(v) || n < 1 || n > MaxPayoutLimit {
			return f, nil, errInvalidf("limit must be an integer from 1 to %d", MaxPayoutLimit)
		}
		f.Limit = n
	}
	if v, ok := q["after"]; ok {
		if !scorekeeper.ValidUserID(v) {
			return f, nil, errInvalidf("after must be a userId: 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")
		}
		f.After = v
	}
	return f, q, nil
}

// listPayouts serves GET /api/payouts.
func listPayouts(r reader) fiber.Handler {
	return func(c *fiber.Ctx) error {
		f, q, err := parsePayoutFilter(c)
		if err != nil {
			return err
		}
		ctx, cancel := queryContext(c)
		defer cancel()
		asOf, err := r.AsOf(ctx)
		if err != nil {
			return storeError(ctx, err)
		}
		rows, total, err := r.PayoutTotals(ctx, f)
		if err != nil {
			return storeError(ctx, err)
		}

		c.Set(HeaderTotalCount, strconv.Itoa(total))
		// A full page may have a successor; a short one is the last. (A
		// full last page costs the client one request for an empty page,
		// which is cheaper than a second count per page for us.)
		if len(rows) == f.Limit && len(rows) > 0 {
			c.Set(fiber.HeaderLink, `<`+nextPageURL(c, q, rows[len(rows)-1].UserID)+`>; rel="next"`)
		}
		return sendCachable(c, toPayoutResponses(rows), asOf)
	}
}

// nextPageURL is the current request with after moved to the page's last
// user, keeping the caller's other parameters. It is absolute (on the
// request's own scheme and host) so naive clients can follow it as is.
func nextPageURL(c *fiber.Ctx, q map[string]string, last string) string {
	v := url.Values{}
	for k, x := range q {
		v.Set(k, x)
	}
	v.Set("after", last)
	return c.BaseURL() + "/api/payouts?" + v.Encode()
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
