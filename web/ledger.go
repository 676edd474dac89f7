package web

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"sync"
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
		b = appendInstant(b, e.CreatedAt)
		b = append(b, `","syncedAt":"`...)
		b = appendInstant(b, e.SyncedAt)
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

// appendInstant appends t as t.UTC().AppendFormat(b, time.RFC3339Nano)
// does.
func appendInstant(b []byte, t time.Time) []byte {
	if sec := t.Unix(); t.Nanosecond()%1000 != 0 || sec < 0 || sec >= maxFastMicros/1e6 {
		return t.UTC().AppendFormat(b, time.RFC3339Nano)
	}
	return appendMicros(b, t.UnixMicro())
}

// appendMicros appends the instant us (Unix microseconds) as
// time.UnixMicro(us).UTC().AppendFormat(b, time.RFC3339Nano) does, byte for
// byte: the fraction without trailing zeros, none when whole.
func appendMicros(b []byte, us int64) []byte {
	var e instantEncoder
	return e.append(b, us)
}

// instantEncoder appends instants as appendMicros does, remembering the
// date of the last day it wrote: a ledger page's rows mostly share days.
// Two instants are most of a ledger row; this costs a fraction of the
// general formatter. Instants before 1970 or from the year 10000 on take
// the general one. The zero value is ready to use.
type instantEncoder struct {
	day  int64
	date [len("2006-01-02T")]byte
	ok   bool
}

func (e *instantEncoder) append(b []byte, us int64) []byte {
	const dayMicros = 86400 * 1e6
	if us < 0 || us >= maxFastMicros {
		return time.UnixMicro(us).UTC().AppendFormat(b, time.RFC3339Nano)
	}
	day, tod := us/dayMicros, us%dayMicros
	if !e.ok || day != e.day {
		e.day, e.ok = day, true
		y, m, d := civilDate(day)
		date := append2(append2(e.date[:0], y/100), y%100)
		date = append2(append(date, '-'), m)
		date = append2(append(date, '-'), d)
		_ = append(date, 'T')
	}
	b = append(b, e.date[:]...)
	secs, frac := tod/1e6, tod%1e6
	b = append2(b, secs/3600)
	b = append2(append(b, ':'), secs/60%60)
	b = append2(append(b, ':'), secs%60)
	if frac != 0 {
		b = append2(append2(append2(append(b, '.'), frac/10000), frac/100%100), frac%100)
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return append(b, 'Z')
}

// civilDate is the proleptic Gregorian date of a day count from
// 1970-01-01, for days >= 0: H. Hinnant, "chrono-Compatible Low-Level
// Date Algorithms", civil_from_days.
func civilDate(days int64) (y, m, d int64) {
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}

// maxFastMicros is 10000-01-01T00:00:00Z in Unix microseconds.
const maxFastMicros = 253402300800 * 1e6

// append2 appends v, 0 to 99, in two digits.
func append2(b []byte, v int64) []byte {
	return append(b, byte('0'+v/10), byte('0'+v%10))
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
// for the summary). A ledger the cache holds is encoded straight from it
// into a pooled buffer; others come from the store.
func listLedger(st scorekeeper.Store, cache *Cache, base string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		userID, err := pathUserID(c)
		if err != nil {
			return err
		}
		f, q, err := parseLedgerFilter(c, userID)
		if err != nil {
			return err
		}
		buf := pageBufs.Get().(*[]byte)
		defer func() {
			if cap(*buf) <= maxPooledPage {
				pageBufs.Put(buf)
			}
		}()
		return serveUserPage(c, st, userID, f.Limit, q, base, "/transactions", func(ctx context.Context) (userPage, error) {
			if cache != nil {
				if p, ok := cache.appendLedgerPage(ctx, f, (*buf)[:0]); ok {
					*buf = p.body[:0]
					return userPage{rows: p.rows, total: p.total, body: p.body,
						next: func() string { return ledgerCursorAt(p.last.CreatedAt, p.last.ID) }}, nil
				}
			}
			es, total, err := st.Ledger(ctx, f)
			if err != nil {
				return userPage{}, err
			}
			page := rowsPage(es, total, func(e scorekeeper.LedgerEntry) string { return ledgerCursorAt(e.CreatedAt, e.ID) })
			if b, ok := appendLedgerJSON((*buf)[:0], es); ok {
				page.body, *buf = b, b[:0]
			} else {
				page.v = toLedgerResponses(es)
			}
			return page, nil
		})
	}
}

// pageBufs holds the buffers ledger pages are encoded in (a 100-row page
// is 13 KB): the response copies the body, the buffer is used again. One
// grown past maxPooledPage (MaxLedgerLimit rows take 1.3 MB) is dropped.
var pageBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

const maxPooledPage = 256 << 10

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
		return serveUserPage(c, st, userID, f.Limit, q, base, "/payouts", func(ctx context.Context) (userPage, error) {
			hold, err := st.PayoutHold(ctx, userID)
			if err != nil {
				return userPage{}, err
			}
			ps, total, err := st.UserPayouts(ctx, f)
			if err != nil {
				return userPage{}, err
			}
			page := rowsPage(ps, total, func(p scorekeeper.Payout) string { return ledgerCursorAt(p.CreatedAt, p.TransactionID) })
			page.v = toUserPayoutResponses(ps, hold)
			return page, nil
		})
	}
}

// serveUserPage answers one page of a user's listing at
// /api/users/{userId}{path}: the user must exist (as for the summary), the
// watermark is read before the rows (so they are at least that fresh),
// then X-Total-Count, a Link to the next page when this one is full, and
// the rows as a cachable JSON body.
func serveUserPage(c *fiber.Ctx, st scorekeeper.Store, userID string, limit int, q map[string]string, base, path string,
	read func(context.Context) (userPage, error)) error {
	ctx, cancel := queryContext(c)
	defer cancel()
	asOf, err := st.AsOf(ctx)
	if err != nil {
		return storeError(ctx, err)
	}
	if _, err := st.Summary(ctx, userID); err != nil {
		return storeError(ctx, err)
	}
	page, err := read(ctx)
	if err != nil {
		return storeError(ctx, err)
	}
	c.Set(HeaderTotalCount, strconv.Itoa(page.total))
	if page.rows == limit && page.rows > 0 {
		setNextLink(c, base, "/api/users/"+url.PathEscape(userID)+path, q, page.next())
	}
	if page.body != nil {
		return sendCachableBody(c, page.body, asOf)
	}
	return sendCachable(c, page.v, asOf)
}

// userPage is one page of a user's listing.
type userPage struct {
	rows, total int
	// next renders the last row's cursor.
	next func() string
	// The rows, encoded as JSON (body), or to encode (v).
	body []byte
	v    any
}

// rowsPage is the page of rows, total in all; cursor renders a row's.
func rowsPage[T any](rows []T, total int, cursor func(T) string) userPage {
	return userPage{rows: len(rows), total: total, next: func() string { return cursor(rows[len(rows)-1]) }}
}
