package web

import (
	"slices"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"scorekeeper"
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
	payoutStatuses = []string{"requested", "pending", "paid", "failed", "canceled"}
	payoutSorts    = []string{"userId", "-payoutAmount"}
)

// payoutResponse is one row of GET /api/payouts.
type payoutResponse struct {
	UserID       string             `json:"userId"`
	PayoutAmount scorekeeper.Amount `json:"payoutAmount"`
}

func toPayoutResponses(ts []scorekeeper.PayoutTotal) []payoutResponse {
	// make, not a nil slice: an empty page is [] in JSON, not null.
	out := make([]payoutResponse, len(ts))
	for i, t := range ts {
		out[i] = payoutResponse{UserID: t.UserID, PayoutAmount: t.Amount}
	}
	return out
}

// payoutCursor is the content of an `after` cursor of GET /api/payouts:
// the sort key of the previous page's last row, and the sort it belongs
// to. Carrying the key itself (not just the user) lets the next page
// start in the right place even when that user's amount changed or the
// user left the listing meanwhile.
type payoutCursor struct {
	Sort   string `json:"s"`
	UserID string `json:"u"`
	// Cents is the last row's amount, under sort -payoutAmount only.
	Cents *int64 `json:"a,omitempty"`
}

// payoutCursorOf is the cursor after row t in sort order sort.
func payoutCursorOf(sort string, t scorekeeper.PayoutTotal) string {
	pc := payoutCursor{Sort: sort, UserID: t.UserID}
	if sort == "-payoutAmount" {
		cents := t.Amount.Cents()
		pc.Cents = &cents
	}
	return encodeCursor(pc)
}

// parsePayoutCursor decodes an after cursor for a listing in sort order
// sort.
func parsePayoutCursor(s, sort string) (scorekeeper.PayoutCursor, error) {
	var pc payoutCursor
	if err := decodeCursor(s, &pc); err != nil || !slices.Contains(payoutSorts, pc.Sort) || !scorekeeper.ValidUserID(pc.UserID) {
		return scorekeeper.PayoutCursor{}, errBadCursor
	}
	if pc.Sort != sort {
		return scorekeeper.PayoutCursor{}, errInvalidf("after is a cursor of sort=%s, but this request is sort=%s: keep the sort while paging", pc.Sort, sort)
	}
	// Listed amounts are positive, so a cursor without one, or with
	// another, was not made by us.
	byAmount := sort == "-payoutAmount"
	if byAmount != (pc.Cents != nil) || byAmount && *pc.Cents <= 0 {
		return scorekeeper.PayoutCursor{}, errBadCursor
	}
	c := scorekeeper.PayoutCursor{UserID: pc.UserID}
	if byAmount {
		c.Amount = scorekeeper.AmountFromCents(*pc.Cents)
	}
	return c, nil
}

// parsePayoutFilter validates the query of GET /api/payouts.
func parsePayoutFilter(c *fiber.Ctx) (scorekeeper.PayoutFilter, map[string]string, error) {
	q, err := queryParams(c, "status", "limit", "after", "sort")
	if err != nil {
		return scorekeeper.PayoutFilter{}, nil, err
	}
	f := scorekeeper.PayoutFilter{Status: payoutStatuses[0], Sort: payoutSorts[0]}
	if v, ok := q["status"]; ok {
		if !slices.Contains(payoutStatuses, v) {
			return f, nil, errInvalidf("status must be one of requested, pending, paid, failed or canceled")
		}
		f.Status = v
	}
	if v, ok := q["sort"]; ok {
		if !slices.Contains(payoutSorts, v) {
			return f, nil, errInvalidf("sort must be userId or -payoutAmount")
		}
		f.Sort = v
	}
	if f.Limit, err = parseLimit(q, DefaultPayoutLimit, MaxPayoutLimit); err != nil {
		return f, nil, err
	}
	if v, ok := q["after"]; ok {
		if f.After, err = parsePayoutCursor(v, f.Sort); err != nil {
			return f, nil, err
		}
	}
	return f, q, nil
}

// listPayouts serves GET /api/payouts. base is the PUBLIC_BASE_URL of
// next-page links ("" for relative links).
func listPayouts(st scorekeeper.Store, base string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		f, q, err := parsePayoutFilter(c)
		if err != nil {
			return err
		}
		ctx, cancel := queryContext(c)
		defer cancel()
		asOf, err := st.AsOf(ctx)
		if err != nil {
			return storeError(ctx, err)
		}
		rows, total, err := st.PayoutTotals(ctx, f)
		if err != nil {
			return storeError(ctx, err)
		}

		c.Set(HeaderTotalCount, strconv.Itoa(total))
		// A full page may have a successor; a short one is the last. (A
		// full last page costs the client one request for an empty page,
		// which is cheaper than a second count per page for us.)
		if len(rows) == f.Limit && len(rows) > 0 {
			setNextLink(c, base, "/api/payouts", q, payoutCursorOf(f.Sort, rows[len(rows)-1]))
		}
		return sendCachable(c, toPayoutResponses(rows), asOf)
	}
}
