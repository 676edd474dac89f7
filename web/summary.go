package web

import (
	"strconv"
	"time"

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

// getSummary serves GET /api/users/{userId}/summary, and with ?asOf= the
// summary as of an instant (see summaryAsOf). st is the store the route
// reads, cache (nil when there is none) the Cache in front of it, whose
// memory answers most reads without arming a query deadline.
func getSummary(st scorekeeper.Store, cache *Cache) fiber.Handler {
	return func(c *fiber.Ctx) error {
		q, err := queryParams(c, "asOf")
		if err != nil {
			return err
		}
		userID, err := pathUserID(c)
		if err != nil {
			return err
		}
		if v, ok := q["asOf"]; ok {
			return summaryAsOf(c, st, userID, v)
		}

		// Most reads are answered from memory: no query deadline to arm.
		if cache != nil {
			switch s, asOf, found := cache.lookupSummary(userID); found {
			case lookupHit:
				return sendSummary(c, s, asOf)
			case lookupAbsent:
				return errUserNotFound(userID)
			}
		}
		ctx, cancel := queryContext(c)
		defer cancel()
		asOf, err := st.AsOf(ctx)
		if err != nil {
			return storeError(ctx, err)
		}
		s, err := st.Summary(ctx, userID)
		if err != nil {
			return storeError(ctx, err)
		}
		return sendSummary(c, s, asOf)
	}
}

// sendSummary answers with s, as sendCachable would, encoding it by hand:
// this is the hottest route, and encoding/json spends most of its time on
// reflection and the five Amount.MarshalJSON calls.
func sendSummary(c *fiber.Ctx, s scorekeeper.Summary, asOf *time.Time) error {
	body, ok := appendSummaryJSON(make([]byte, 0, 128), toSummaryResponse(s))
	if !ok {
		return sendCachable(c, toSummaryResponse(s), asOf)
	}
	return sendCachableBody(c, body, asOf)
}

// appendSummaryJSON appends r as encoding/json would encode it, byte for
// byte, or reports false when the user id needs escaping (never for a
// valid id), leaving that to encoding/json.
func appendSummaryJSON(b []byte, r summaryResponse) ([]byte, bool) {
	if !jsonSafe(r.UserID) {
		return b, false
	}
	b = append(b, `{"userId":"`...)
	b = append(b, r.UserID...)
	b = append(b, `","balance":`...)
	b = appendAmount(b, r.Balance)
	b = append(b, `,"earned":`...)
	b = appendAmount(b, r.Earned)
	b = append(b, `,"spent":`...)
	b = appendAmount(b, r.Spent)
	b = append(b, `,"payout":`...)
	b = appendAmount(b, r.Payout)
	b = append(b, `,"paidOut":`...)
	b = appendAmount(b, r.PaidOut)
	return append(b, '}'), true
}

// appendAmount appends a as Amount.String renders it ("19.2", "12",
// "0.05", "-3.1"), without allocating.
func appendAmount(b []byte, a scorekeeper.Amount) []byte {
	c := a.Cents()
	var u uint64
	if c < 0 {
		b = append(b, '-')
		u = uint64(-(c + 1)) + 1 // safe for math.MinInt64
	} else {
		u = uint64(c)
	}
	whole, frac := u/100, u%100
	b = strconv.AppendUint(b, whole, 10)
	switch {
	case frac == 0:
	case frac%10 == 0:
		b = append(b, '.', byte('0'+frac/10))
	default:
		b = append(b, '.', byte('0'+frac/10), byte('0'+frac%10))
	}
	return b
}
