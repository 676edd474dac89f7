package web

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"scorekeeper"
	"scorekeeper/internal/httpx"
)

// Codes the web layer adds to the domain's for failures that only exist
// in HTTP (no route, wrong method, oversized request).
const (
	codeMethodNotAllowed = "method_not_allowed"
	codeTooLarge         = "payload_too_large"
)

// statusOf maps each domain error code to its HTTP status. Anything not
// listed, EInternal included, is 500.
var statusOf = map[string]int{
	scorekeeper.EInvalid:      fiber.StatusBadRequest,
	scorekeeper.EUnauthorized: fiber.StatusUnauthorized,
	scorekeeper.EForbidden:    fiber.StatusForbidden,
	scorekeeper.ENotFound:     fiber.StatusNotFound,
	scorekeeper.EConflict:     fiber.StatusConflict,
	scorekeeper.ERateLimited:  fiber.StatusTooManyRequests,
	scorekeeper.EUnavailable:  fiber.StatusServiceUnavailable,
}

// errorResponse is the body of every error: {"error":{"code","message"}}.
type errorResponse struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// panicError is a recovered panic, kept with its stack for the log.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// errorHandler returns the one function that turns an error into a
// response. Domain errors keep their code and safe message; Fiber's own
// errors (no route, wrong method, body too large) get our codes and
// messages; everything else is internal: logged in full, answered with
// "internal error" so no driver text or stack ever reaches a client.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		status, body := classify(c, err)
		// Every 5xx is logged with its cause: a 500 is a bug to fix, a 503
		// a dependency to look at. Neither cause reaches the client.
		if status >= fiber.StatusInternalServerError {
			level := slog.LevelWarn
			if status == fiber.StatusInternalServerError {
				level = slog.LevelError
			}
			attrs := []any{"err", err, "status", status, "method", httpx.MethodName(c.Method()), "path", strings.Clone(c.Path()), "request_id", requestIDOf(c)}
			var p *panicError
			if errors.As(err, &p) {
				attrs = append(attrs, "stack", string(p.stack))
			}
			log.Log(c.UserContext(), level, "request failed", attrs...)
		}
		switch status {
		case fiber.StatusUnauthorized:
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="scorekeeper"`)
		case fiber.StatusMethodNotAllowed:
			c.Set(fiber.HeaderAllow, strings.Join(allowedMethods(c), ", "))
		}
		// An error must never be served from a cache or carry the ETag of
		// the representation it replaced.
		c.Set(fiber.HeaderCacheControl, "no-store")
		c.Response().Header.Del(fiber.HeaderETag)
		return c.Status(status).JSON(errorResponse{Error: body})
	}
}

// classify picks the status, code and safe message for err.
func classify(c *fiber.Ctx, err error) (int, errorBody) {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fiber.StatusNotFound:
			return fe.Code, errorBody{scorekeeper.ENotFound, "no route for " + c.Method() + " " + c.Path()}
		case fiber.StatusMethodNotAllowed:
			return fe.Code, errorBody{codeMethodNotAllowed, "method " + c.Method() + " is not allowed on " + c.Path()}
		case fiber.StatusRequestEntityTooLarge:
			return fe.Code, errorBody{codeTooLarge, fmt.Sprintf("request body is larger than %d bytes", BodyLimit)}
		}
		if fe.Code >= 400 && fe.Code < 500 {
			// Fiber's message may quote fasthttp's parser; the status text
			// says enough.
			return fe.Code, errorBody{scorekeeper.EInvalid, utils.StatusMessage(fe.Code)}
		}
		return fiber.StatusInternalServerError, errorBody{scorekeeper.EInternal, "internal error"}
	}
	code := scorekeeper.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		return fiber.StatusInternalServerError, errorBody{scorekeeper.EInternal, "internal error"}
	}
	return status, errorBody{code, scorekeeper.ErrorMessage(err)}
}

// allowedMethods lists the methods some route accepts for the request's
// path, for the Allow header a 405 must carry (RFC 9110 §15.5.6).
func allowedMethods(c *fiber.Ctx) []string {
	var methods []string
	for _, r := range c.App().GetRoutes(true) {
		if pathMatches(r.Path, c.Path()) && !slices.Contains(methods, r.Method) {
			methods = append(methods, r.Method)
		}
	}
	slices.Sort(methods)
	return methods
}

// pathMatches reports whether path fits the route pattern, where a
// ":name" segment matches any non-empty segment. Our routes use no other
// pattern syntax.
func pathMatches(pattern, path string) bool {
	ps := strings.Split(strings.TrimSuffix(pattern, "/"), "/")
	xs := strings.Split(strings.TrimSuffix(path, "/"), "/")
	if len(ps) != len(xs) {
		return false
	}
	for i, p := range ps {
		if strings.HasPrefix(p, ":") {
			if xs[i] == "" {
				return false
			}
		} else if p != xs[i] {
			return false
		}
	}
	return true
}

// errInvalidf is a 400 with a message naming what was wrong.
func errInvalidf(format string, args ...any) error {
	return scorekeeper.Errorf(scorekeeper.EInvalid, format, args...)
}
