package web

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"scorekeeper"
)

// Paging limits of GET /api/users/{userId}/transactions, as those of GET
// /api/payouts.
const (
	DefaultLedgerLimit = 1000
	MaxLedgerLimit     = 10000
)

// ledgerResponse is one row of GET /api/users/{userId}/transactions.
type ledgerResponse struct {
	ID        string             `json:"id"`
	Type      scorekeeper.TxType `json:"type"`
	Amount    scorekeeper.Amount `json:"amount"`
	CreatedAt time.Time          `json:"createdAt"`
	SyncedAt  time.Time          `json:"syncedAt"`
	// Status is a payout's disbursement state, absent for other types.
	Status scorekeeper.PayoutStatus `json:"status,omitempty"`
}

func toLedgerResponses(es []scorekeeper.LedgerEntry) []ledgerResponse {
	// make, not a nil slice: an empty page is [] in JSON, not null.
	out := make([]ledgerResponse, len(es))
	for i, e := range es {
		out[i] = ledgerResponse{ID: e.ID, Type: e.Type, Amount: e.Amount, CreatedAt: e.CreatedAt.UTC(), SyncedAt: e.SyncedAt.UTC(), Status: e.Status}
	}
	return out
}

// jsonSafe reports whether encoding/json writes s between quotes as it
// is: no control characters, quotes, backslashes, HTML-escaped <, > or &,
// and only ASCII (so no UTF-8 to validate).
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if ch := s[i]; ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' || ch == '<' || ch == '>' || ch == '&' {
			return false
		}
	}
	return true
}

// appendLedgerJSON appends es as encoding/json encodes
// toLedgerResponses(es), byte for byte, or reports false when an id or
// type needs escaping (no valid one does), leaving that to encoding/json.
// A ledger page is up to MaxLedgerLimit rows, each with two instants and
// an amount: by hand it costs a fraction of the reflection.
func appendLedgerJSON(b []byte, es []scorekeeper.LedgerEntry) ([]byte, bool) {
	b = append(b, '[')
	for i, e := range es {
		if !jsonSafe(e.ID) || !jsonSafe(string(e.Type)) || !jsonSafe(string(e.Status)) {
			return b, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = append(b, e.ID...)
		b = append(b, `","type":"`...)
		b = append(b, e.Type...)
		b = append(b, `","amount":`...)
		b = appendAmount(b, e.Amount)
		b = append(b, `,"createdAt":"`...)
		b = e.CreatedAt.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","syncedAt":"`...)
		b = e.SyncedAt.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
		if e.Status != "" {
			b = append(b, `,"status":"`...)
			b = append(b, e.Status...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, ']'), true
}

// ledgerCursor is the content of an `after` cursor of a ledger: the
// previous page's last row. Both fields are required.
type ledgerCursor struct {
	// At is createdAt in Unix microseconds, the precision stored.
	At *int64 `json:"t"`
	// ID breaks ties within one instant.
	ID *string `json:"i"`
}

// pathUserID reads and validates the {userId} path parameter. Routing
// matches the raw path, so the param is still percent-encoded; it is
// cloned because Fiber reuses the buffer behind it.
func pathUserID(c *fiber.Ctx) (string, error) {
	userID, err := url.PathUnescape(strings.Clone(c.Params("userId")))
	if err != nil || !scorekeeper.ValidUserID(userID) {
		return "", errBadUserID
	}
	return userID, nil
}

// parseInstant reads an RFC 3339 query parameter.
func parseInstant(q map[string]string, name string) (time.Time, error) {
	v, ok := q[name]
	if !ok {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errInvalidf("%s must be an RFC 3339 instant such as 2023-02-01T00:00:00Z", name)
	}
	return t.UTC(), nil
}

// parseLedgerFilter validates the query of GET
// /api/users/{userId}/transactions.
func parseLedgerFilter(c *fiber.Ctx, userID string) (scorekeeper.LedgerFilter, map[string]string, error) {
	q, err := queryParams(c, "type", "from", "to", "limit", "after")
	if err != nil {
		return scorekeeper.LedgerFilter{}, nil, err
	}
	f := scorekeeper.LedgerFilter{UserID: userID}
	if v, ok := q["type"]; ok {
		switch t := scorekeeper.TxType(v); t {
		case scorekeeper.TxEarned, scorekeeper.TxSpent, scorekeeper.TxPayout:
			f.Type = t
		default:
			return f, nil, errInvalidf("type must be earned, spent or payout")
		}
	}
	if f.From, err = parseInstant(q, "from"); err != nil {
		return f, nil, err
	}
	if f.To, err = parseInstant(q, "to"); err != nil {
		return f, nil, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, nil, errInvalidf("from must be before to (from is inclusive, to exclusive)")
	}
	if f.Limit, err = parseLimit(q, DefaultLedgerLimit, MaxLedgerLimit); err != nil {
		return f, nil, err
	}
	if f.After, err = parseLedgerCursor(q); err != nil {
		return f, nil, err
	}
	return f, q, nil
}

// parseLedgerCursor reads the `after` of a ledger or a user's payouts.
func parseLedgerCursor(q map[string]string) (scorekeeper.LedgerCursor, error) {
	v, ok := q["after"]
	if !ok {
		return scorekeeper.LedgerCursor{}, nil
	}
	var lc ledgerCursor
	if err := decodeCursor(v, &lc); err != nil || lc.At == nil || lc.ID == nil || *lc.ID == "" || len(*lc.ID) > 256 {
		return scorekeeper.LedgerCursor{}, errBadCursor
	}
	return scorekeeper.LedgerCursor{CreatedAt: time.UnixMicro(*lc.At).UTC(), ID: *lc.ID}, nil
}

// ledgerCursorAt renders the cursor of a row at (createdAt, id).
func ledgerCursorAt(createdAt time.Time, id string) string {
	at := createdAt.UnixMicro()
	return encodeCursor(ledgerCursor{At: &at, ID: &id})
}

// listLedger serves GET /api/users/{userId}/transactions: the user's
// transactions, newest first, paged by cursor. The user must exist (as
// for the summary); the rows come from the store. The
// watermark is read before the rows, so they are at least that fresh.
func listLedger(st scorekeeper.Store, base string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		userID, err := pathUserID(c)
		if err != nil {
			return err
		}
		f, q, err := parseLedgerFilter(c, userID)
		if err != nil {
			return err
		}
		return serveUserPage(c, st, userID, f.Limit, q, base, "/transactions",
			func(ctx context.Context) ([]scorekeeper.LedgerEntry, int, error) { return st.Ledger(ctx, f) },
			func(e scorekeeper.LedgerEntry) string { return ledgerCursorAt(e.CreatedAt, e.ID) },
			func(es []scorekeeper.LedgerEntry) any {
				if b, ok := appendLedgerJSON(make([]byte, 0, 160*len(es)+2), es); ok {
					return rawJSON(b)
				}
				return toLedgerResponses(es)
			})
	}
}

// summaryAsOf answers GET /api/users/{userId}/summary?asOf=…: the summary
// over what was created (and settled) by that instant. An instant after
// the watermark could still change as data arrives: 409, naming the
// watermark. The user must exist now (the store says so).
func summaryAsOf(c *fiber.Ctx, st scorekeeper.Store, userID, v string) error {
	at, err := parseInstant(map[string]string{"asOf": v}, "asOf")
	if err != nil {
		return err
	}
	ctx, cancel := queryContext(c)
	defer cancel()
	asOf, err := st.AsOf(ctx)
	if err != nil {
		return storeError(ctx, err)
	}
	if asOf == nil {
		return scorekeeper.Errorf(scorekeeper.EConflict, "nothing is synced yet: no summary as of %s can be final", at.Format(time.RFC3339Nano))
	}
	if at.After(*asOf) {
		return scorekeeper.Errorf(scorekeeper.EConflict, "asOf %s is after the data synced through %s: the answer could still change; ask for an instant at or before it",
			at.Format(time.RFC3339Nano), asOf.UTC().Format(time.RFC3339Nano))
	}
	// An unknown user is the store's ENotFound (404).
	sum, err := st.SummaryAsOf(ctx, userID, at)
	if err != nil {
		return storeError(ctx, err)
	}
	return sendCachable(c, toSummaryResponse(sum), asOf)
}

// userPayoutResponse is one row of GET /api/users/{userId}/payouts.
type userPayoutResponse struct {
	ID          string                   `json:"id"`
	Amount      scorekeeper.Amount       `json:"amount"`
	RequestedAt time.Time                `json:"requestedAt"`
	Status      scorekeeper.PayoutStatus `json:"status"`
	// Reason says why it failed or was canceled, or why it is held;
	// ProviderID is the provider's id of a paid payout; both "" otherwise.
	Reason     string `json:"reason"`
	ProviderID string `json:"providerId"`
	// Attempts counts the requests sent to the provider.
	Attempts int `json:"attempts"`
	// SettledAt is null while the payout is requested.
	SettledAt *time.Time `json:"settledAt"`
}

// toUserPayoutResponses renders payouts; with a hold, the requested ones
// show as held, with the hold's reason.
func toUserPayoutResponses(ps []scorekeeper.Payout, hold *scorekeeper.PayoutHold) []userPayoutResponse {
	out := make([]userPayoutResponse, len(ps))
	for i, p := range ps {
		out[i] = userPayoutResponse{ID: p.TransactionID, Amount: p.Amount, RequestedAt: p.CreatedAt.UTC(), Status: p.Status,
			Reason: p.Reason, ProviderID: p.ProviderID, Attempts: p.Attempts}
		if hold != nil && p.Status == scorekeeper.PayoutRequested {
			out[i].Status = PayoutHeld
			out[i].Reason = "held by " + hold.By + ": " + hold.Reason
		}
		if !p.SettledAt.IsZero() {
			at := p.SettledAt.UTC()
			out[i].SettledAt = &at
		}
	}
	return out
}

// listUserPayouts serves GET /api/users/{userId}/payouts: the user's
// payouts, newest first, paged by cursor like the ledger.
func listUserPayouts(st scorekeeper.Store, base string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		userID, err := pathUserID(c)
		if err != nil {
			return err
		}
		q, err := queryParams(c, "limit", "after")
		if err != nil {
			return err
		}
		f := scorekeeper.UserPayoutFilter{UserID: userID}
		if f.Limit, err = parseLimit(q, DefaultLedgerLimit, MaxLedgerLimit); err != nil {
			return err
		}
		if f.After, err = parseLedgerCursor(q); err != nil {
			return err
		}
		var hold *scorekeeper.PayoutHold
		return serveUserPage(c, st, userID, f.Limit, q, base, "/payouts",
			func(ctx context.Context) ([]scorekeeper.Payout, int, error) {
				var err error
				if hold, err = st.PayoutHold(ctx, userID); err != nil {
					return nil, 0, err
				}
				return st.UserPayouts(ctx, f)
			},
			func(p scorekeeper.Payout) string { return ledgerCursorAt(p.CreatedAt, p.TransactionID) },
			func(ps []scorekeeper.Payout) any { return toUserPayoutResponses(ps, hold) })
	}
}

// serveUserPage answers one page of a user's listing at
// /api/users/{userId}{path}: the user must exist (as for the summary), the
// watermark is read before the rows (so they are at least that fresh),
// then X-Total-Count, a Link to the next page when this one is full, and
// the rows rendered as a cachable JSON body: render returns a value for
// encoding/json, or rawJSON already encoded.
func serveUserPage[T any](c *fiber.Ctx, st scorekeeper.Store, userID string, limit int, q map[string]string, base, path string,
	read func(context.Context) ([]T, int, error), cursor func(T) string, render func([]T) any) error {
	ctx, cancel := queryContext(c)
	defer cancel()
	asOf, err := st.AsOf(ctx)
	if err != nil {
		return storeError(ctx, err)
	}
	if _, err := st.Summary(ctx, userID); err != nil {
		return storeError(ctx, err)
	}
	rows, total, err := read(ctx)
	if err != nil {
		return storeError(ctx, err)
	}
	c.Set(HeaderTotalCount, strconv.Itoa(total))
	if len(rows) == limit && len(rows) > 0 {
		setNextLink(c, base, "/api/users/"+url.PathEscape(userID)+path, q, cursor(rows[len(rows)-1]))
	}
	v := render(rows)
	if body, ok := v.(rawJSON); ok {
		return sendCachableBody(c, body, asOf)
	}
	return sendCachable(c, v, asOf)
}

// rawJSON is a response body already encoded.
type rawJSON []byte
