package web

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"scorekeeper"
)

// summaryResponse is the body of GET /api/users/{userId}/summary. The
// field order is the documented key order.
type summaryResponse struct {
	UserID  string             `json:"userId"`
	Balance scorekeeper.Amount `json:"balance"`
	Earned  scorekeeper.Amount `json:"earned"`
	Spent   scorekeeper.Amount `json:"spent"`
	Payout  scorekeeper.Amount `json:"payout"`
	PaidOut scorekeeper.Amount `json:"paidOut"`
}

func toSummaryResponse(s scorekeeper.Summary) summaryResponse {
	return summaryResponse{
		UserID:  s.UserID,
		Balance: s.Balance(),
		Earned:  s.Earned,
		Spent:   s.Spent,
		Payout:  s.Payout,
		PaidOut: s.PaidOut,
	}
}

// errBadUserID does not echo the id: it may be anything, of any length.
var errBadUserID = errInvalidf("userId must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")

// getSummary serves GET /api/users/{userId}/summary.
func getSummary(r reader) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if _, err := queryParams(c); err != nil {
			return err
		}
		// Routing matches the raw path, so the param is still
		// percent-encoded. It is cloned because Fiber reuses the buffer
		// behind it (and PathUnescape returns its input when there is
		// nothing to unescape).
		userID, err := url.PathUnescape(strings.Clone(c.Params("userId")))
		if err != nil || !scorekeeper.ValidUserID(userID) {
			return errBadUserID
		}

		ctx, cancel := queryContext(c)
		defer cancel()
		asOf, err := r.AsOf(ctx)
		if err != nil {
			return storeError(ctx, err)
		}
		s, err := r.Summary(ctx, userID)
		if err != nil {
			return storeError(ctx, err)
		}
		return sendCachable(c, toSummaryResponse(s), asOf)
	}
}
