package web

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"scorekeeper"
)

// Paging limits of GET /api/quarantine, as those of GET /api/payouts.
const (
	// DefaultQuarantineLimit is the page size when the query names none.
	DefaultQuarantineLimit = 1000
	// MaxQuarantineLimit is the largest limit accepted. Each item's raw
	// text is an excerpt of at most scorekeeper.MaxQuarantineExcerpt
	// bytes, so it bounds what one request can cost.
	MaxQuarantineLimit = 10000
)

// quarantineResponse is one item of GET /api/quarantine.
type quarantineResponse struct {
	// ID is null when the item had no readable id.
	ID *string `json:"id"`
	// Raw is the item's raw text, or when Truncated its start.
	Raw        string    `json:"raw"`
	Reason     string    `json:"reason"`
	ReceivedAt time.Time `json:"receivedAt"`
	// Size and SHA256 are the whole item's: its length in bytes and the
	// hex SHA-256 of its raw text.
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Truncated bool   `json:"truncated"`
}

func toQuarantineResponses(items []scorekeeper.QuarantineItem) []quarantineResponse {
	// make, not a nil slice: an empty page is [] in JSON, not null.
	out := make([]quarantineResponse, len(items))
	for i, q := range items {
		out[i] = quarantineResponse{
			Raw: q.Raw, Reason: q.Reason, ReceivedAt: q.ReceivedAt.UTC(),
			Size: q.Size, SHA256: q.SHA256, Truncated: q.Truncated,
		}
		if q.ItemID != "" {
			id := q.ItemID
			out[i].ID = &id
		}
	}
	return out
}

// quarantineCursor is the content of an `after` cursor of GET
// /api/quarantine: the position of the previous page's last item. Both
// fields are required; pointers tell a missing one from a zero.
type quarantineCursor struct {
	// At is when the item was received, in Unix microseconds: the
	// precision the database keeps, so the position is exact.
	At *int64 `json:"t"`
	// Key is the item's unique key, the tie-breaker within one instant.
	Key *string `json:"k"`
}

func quarantineCursorOf(q scorekeeper.QuarantineItem) string {
	at, key := q.ReceivedAt.UnixMicro(), q.Key
	return encodeCursor(quarantineCursor{At: &at, Key: &key})
}

// parseQuarantineFilter validates the query of GET /api/quarantine.
func parseQuarantineFilter(c *fiber.Ctx) (scorekeeper.QuarantineFilter, map[string]string, error) {
	q, err := queryParams(c, "limit", "after")
	if err != nil {
		return scorekeeper.QuarantineFilter{}, nil, err
	}
	var f scorekeeper.QuarantineFilter
	if f.Limit, err = parseLimit(q, DefaultQuarantineLimit, MaxQuarantineLimit); err != nil {
		return f, nil, err
	}
	if v, ok := q["after"]; ok {
		var qc quarantineCursor
		if err := decodeCursor(v, &qc); err != nil || qc.At == nil || qc.Key == nil || *qc.Key == "" || len(*qc.Key) > 128 {
			return f, nil, errBadCursor
		}
		f.After = scorekeeper.QuarantineCursor{ReceivedAt: time.UnixMicro(*qc.At).UTC(), Key: *qc.Key}
	}
	return f, q, nil
}

// listQuarantine serves GET /api/quarantine: the malformed upstream items
// kept for inspection, newest first. The cache passes it to the store:
// an operator looking into bad data wants it as stored now, and the route
// is admin-only, so it needs no cache. base is as for listPayouts.
func listQuarantine(s scorekeeper.Store, base string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		f, q, err := parseQuarantineFilter(c)
		if err != nil {
			return err
		}
		ctx, cancel := queryContext(c)
		defer cancel()
		items, total, err := s.QuarantinePage(ctx, f)
		if err != nil {
			return storeError(ctx, err)
		}
		c.Set(HeaderTotalCount, strconv.Itoa(total))
		if len(items) == f.Limit && len(items) > 0 {
			setNextLink(c, base, "/api/quarantine", q, quarantineCursorOf(items[len(items)-1]))
		}
		// Raw upstream data for admins only: no cache anywhere keeps it.
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(toQuarantineResponses(items))
	}
}
