package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strconv"

	"github.com/gofiber/fiber/v2"
)

// maxCursorLen bounds the `after` cursors we decode. Ours are well under
// 200 characters; anything longer is not one of ours and is refused
// before any work is spent on it.
const maxCursorLen = 512

// errBadCursor answers an `after` that is not a cursor of the listing. It
// does not echo the value: it may be anything.
var errBadCursor = errInvalidf("after must be the cursor of a Link header of this listing, passed unchanged")

// encodeCursor renders a page position as an opaque cursor: base64url
// (unpadded, so it needs no escaping in a query) of its JSON. Clients
// must not build or read cursors, which lets their content change.
func encodeCursor(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Cursors are small structs of strings and numbers.
		panic("encode cursor: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor made by encodeCursor into v, strictly: no
// unknown fields and nothing after the JSON value, so a cursor of another
// listing (whose fields differ) does not decode.
func decodeCursor(s string, v any) error {
	if s == "" || len(s) > maxCursorLen {
		return errors.New("bad cursor length")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the cursor")
	}
	return nil
}

// parseLimit reads the limit query parameter: digits only, 1 to max;
// def when absent.
func parseLimit(q map[string]string, def, max int) (int, error) {
	v, ok := q["limit"]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	// Digits only: Atoi would also take "+5" and "-0".
	if err != nil || !isDigits(v) || n < 1 || n > max {
		return 0, errInvalidf("limit must be an integer from 1 to %d", max)
	}
	return n, nil
}

// setNextLink sets `Link: <…>; rel="next"` to path with the caller's
// query parameters q and after replaced by the next page's cursor.
//
// The link is relative (path and query) unless base, the configured
// PUBLIC_BASE_URL, names where clients reach us. It is never built from
// the request's Host or X-Forwarded-* headers: any client can set those,
// and a link to a host of their choosing would send the follower's next
// request, and any token it carries, there.
func setNextLink(c *fiber.Ctx, base, path string, q map[string]string, after string) {
	v := url.Values{}
	for k, x := range q {
		v.Set(k, x)
	}
	v.Set("after", after)
	c.Set(fiber.HeaderLink, "<"+base+path+"?"+v.Encode()+`>; rel="next"`)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
