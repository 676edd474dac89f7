package web

import (
	"log/slog"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
)

// HeaderRequestID carries the request id, in requests and responses.
const HeaderRequestID = "X-Request-Id"

// requestIDKey is the c.Locals key of the request id.
type requestIDKey struct{}

// clientRequestID is what we accept as a caller's own request id: short
// and free of anything that could forge a log line or a header.
var clientRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID keeps the caller's X-Request-Id when it is well formed (so a
// request can be followed through a proxy) and makes one up otherwise, and
// echoes it in the response.
func requestID() fiber.Handler {
	return func(c *fiber.Ctx) error {
		// string(...) copies: Fiber reuses the header buffer after the
		// handler returns, and the id outlives it in the access log.
		id := string(c.Request().Header.Peek(HeaderRequestID))
		if !clientRequestID.MatchString(id) {
			id = utils.UUIDv4()
		}
		c.Locals(requestIDKey{}, id)
		c.Set(HeaderRequestID, id)
		return c.Next()
	}
}

// requestIDOf returns the request's id, or "" outside requestID.
func requestIDOf(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey{}).(string)
	return id
}

// accessLog writes one structured line per request. It renders an error
// that reaches it with the app's error handler (as Fiber would, after it)
// so the logged status is the one the client got.
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
		// Path is cloned because Fiber reuses its buffer once the request
		// ends, and a log handler may keep the value longer.
		log.Log(c.UserContext(), level, "http request",
			"method", c.Method(),
			"path", strings.Clone(c.Path()),
			"status", status,
			"duration", time.Since(start),
			"bytes", len(c.Response().Body()),
			"ip", c.IP(),
			"request_id", requestIDOf(c),
		)
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
