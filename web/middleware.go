package web

import (
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"scorekeeper/internal/httpx"
)

// HeaderRequestID carries the request id, in requests and responses.
const HeaderRequestID = "X-Request-Id"

// requestIDKey is the c.Locals key of the request id.
type requestIDKey struct{}

// validRequestID reports whether id is acceptable as a caller's own
// request id: 1 to 128 characters of [A-Za-z0-9._:-], short and free of
// anything that could forge a log line or a header. (A loop, not a
// regular expression: it runs on every request.)
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// requestID keeps the caller's X-Request-Id when it is well formed (so a
// request can be followed through a proxy) and makes one up otherwise, and
// echoes it in the response.
func requestID() fiber.Handler {
	return func(c *fiber.Ctx) error {
		// string(...) copies: Fiber reuses the header buffer after the
		// handler returns, and the id outlives it in the access log.
		id := string(c.Request().Header.Peek(HeaderRequestID))
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Locals(requestIDKey{}, id)
		c.Set(HeaderRequestID, id)
		return c.Next()
	}
}

// newRequestID makes up a random (version 4) UUID from math/rand/v2, whose
// generator is seeded from the kernel and unpredictable in practice. An id
// to follow a request needs to be unique, not secret: crypto/rand read the
// kernel's random source on every request (6% of the summary route's CPU).
// Nor is it a counter, which would tell a client how many requests others
// made between two of its own.
func newRequestID() string {
	var id uuid.UUID
	binary.LittleEndian.PutUint64(id[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(id[8:], rand.Uint64())
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // the RFC 9562 variant
	return id.String()
}

// requestIDOf returns the request's id, or "" outside requestID.
func requestIDOf(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey{}).(string)
	return id
}

// accessLog writes one structured line per request: info, or warn for a
// 5xx (which the process's logger never drops, see app.NewLogger). It
// renders an error that reaches it with the app's error handler (as Fiber
// would, after it) so the logged status is the one the client got. With
// the level off (LOG_LEVEL=warn) a 2xx-4xx request costs no more than
// reading the clock.
func accessLog(log *slog.Logger, handleError fiber.ErrorHandler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		if err := c.Next(); err != nil {
			if err := handleError(c, err); err != nil {
				_ = c.SendStatus(fiber.StatusInternalServerError)
			}
		}
		status := c.Response().StatusCode()
		level := slog.LevelInfo
		if status >= fiber.StatusInternalServerError {
			level = slog.LevelWarn
		}
		ctx := c.UserContext()
		h := log.Handler()
		if !h.Enabled(ctx, level) {
			return nil
		}
		// The record goes to the handler directly, as slog documents for
		// wrappers: Logger.LogAttrs would also walk the stack for a source
		// location (pc), which the line does not print.
		// Method and path must not point into Fiber's buffers, which it
		// reuses once the request ends, since a log handler may keep the
		// values longer: the method is a constant, the path a copy.
		r := slog.NewRecord(time.Now(), level, "http request", 0)
		r.AddAttrs(
			slog.String("method", httpx.MethodName(c.Method())),
			slog.String("path", strings.Clone(c.Path())),
			slog.Int("status", status),
			slog.Duration("duration", r.Time.Sub(start)),
			slog.Int("bytes", len(c.Response().Body())),
			slog.String("ip", c.IP()),
			slog.String("request_id", requestIDOf(c)),
		)
		_ = h.Handle(ctx, r)
		return nil
	}
}

// renderErrors turns an error from the rest of the chain into its
// response at this point of the middleware stack (see New).
func renderErrors(handleError fiber.ErrorHandler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := c.Next(); err != nil {
			return handleError(c, err)
		}
		return nil
	}
}

// recoverPanics turns a panic below it into an internal error, keeping the
// stack for the log (never for the client).
func recoverPanics() fiber.Handler {
	return func(c *fiber.Ctx) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = &panicError{value: r, stack: debug.Stack()}
			}
		}()
		return c.Next()
	}
}
