package payout

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"scorekeeper/internal/httpx"
)

// CodeUnprocessable is the RejectedError code used when the provider's 422
// carried no error code of its own.
const CodeUnprocessable = "unprocessable"

// MaxRetryAfter caps a 429's Retry-After so a garbage or hostile header
// cannot park a payout for hours; a retry that comes too early just gets
// another 429.
const MaxRetryAfter = 2 * time.Minute

// maxErrorBody caps the body kept in an error: enough to read a message,
// not enough to flood logs.
const maxErrorBody = 512

// RejectedError is the provider's permanent refusal of a payout (422): the
// payout is failed, with Code and Message as its reason. Retrying the same
// request returns the same refusal.
type RejectedError struct {
	Code    string
	Message string
}

// Error implements error.
func (e *RejectedError) Error() string {
	if e.Message == "" {
		return "payout: rejected: " + e.Code
	}
	return fmt.Sprintf("payout: rejected: %s: %s", e.Code, e.Message)
}

// TransientError is an answer that says "not now": 429, 408 or 5xx. The
// same request, with the same idempotency key, should be sent again later.
type TransientError struct {
	StatusCode int
	// RetryAfter is the provider's Retry-After on a 429, capped at
	// MaxRetryAfter; 0 when it sent none, meaning the caller's own backoff.
	RetryAfter time.Duration
	// Body is the start of the response body, at most 512 bytes.
	Body string
}

// Error implements error.
func (e *TransientError) Error() string {
	msg := fmt.Sprintf("payout: provider status %d", e.StatusCode)
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(", retry after %s", e.RetryAfter)
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// StatusError is any other non-2xx answer: 400, 401, 403, 404, 409 and the
// like. Each means the request was refused as sent — a malformed body is our
// bug, 401/403 are bad credentials, 404 is a wrong PAYOUT_URL, 409 is this
// Idempotency-Key already used with a different body — so repeating it
// unchanged cannot succeed, and it is not retryable.
//
// It is not a rejection of the payout either, so callers must leave the
// payout requested and alert, never mark it failed: after a 409 the key's
// first request may well have paid, and after the others nothing was paid
// and the same request with the same key is safe to send once an operator
// fixes the cause. (Some providers also answer 409 while a request with the
// same key is still in flight; if ours does, 409 belongs in transientStatus.)
type StatusError struct {
	StatusCode int
	// Body is the start of the response body, at most 512 bytes.
	Body string
}

// Error implements error.
func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("payout: provider status %d", e.StatusCode)
	}
	return fmt.Sprintf("payout: provider status %d: %s", e.StatusCode, e.Body)
}

// MalformedResponseError is a 2xx answer that is not a paid confirmation:
// not JSON, no id, or a status other than "paid". The provider accepted the
// request, so the payout may be in progress or done; it is retryable, and
// the idempotent retry returns the real outcome.
type MalformedResponseError struct {
	StatusCode int
	Reason     string
}

// Error implements error.
func (e *MalformedResponseError) Error() string {
	return fmt.Sprintf("payout: malformed %d answer: %s", e.StatusCode, e.Reason)
}

// Retryable reports whether Pay's err may go away by sending the same
// request again. It is false for a RejectedError (final), a StatusError
// (needs an operator) and an invalid request (a bug), and true for
// everything else, including timeouts and transport errors: when the answer
// was lost the payout may have happened, and only the idempotent retry can
// tell.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var (
		rejected *RejectedError
		status   *StatusError
	)
	return !errors.As(err, &rejected) && !errors.As(err, &status) && !errors.Is(err, ErrInvalidRequest)
}

// transientStatus reports whether a non-2xx status other than 422 and 429
// asks for a later retry.
func transientStatus(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout
}

// parseRetryAfter reads a Retry-After header, delay-seconds or an HTTP date
// (RFC 9110 §10.2.3), relative to now. Missing or unreadable gives 0: unlike
// the upstream API, the provider's limits are not known here, so the
// caller's backoff decides.
func parseRetryAfter(h string, now time.Time) time.Duration {
	d, _ := httpx.ParseRetryAfter(h, now, MaxRetryAfter)
	return d
}

func truncateUTF8(s string, n int) string { return httpx.TruncateUTF8(s, n) }
