// Package payout is the client of the payout provider (design §5), which
// disburses a payout transaction's amount to the user's bank.
//
// Every request carries the transaction id as its Idempotency-Key, so
// sending the same payout again — after a timeout, a crash or a retry —
// returns the first result and pays nothing twice. That is what makes it
// safe for callers to treat every outcome they cannot interpret as
// transient: the payout may have gone through, and the retry will say so.
//
// Pay sends exactly one request and never retries or sleeps itself; retry
// policy belongs to the caller (a Temporal activity), where it is visible.
package payout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"scorekeeper"
	"scorekeeper/internal/httpx"
)

// Currency is the only currency scorekeeper pays in (1 SCR = 1 EUR).
const Currency = "EUR"

// StatusPaid is the provider's status for a completed payout.
const StatusPaid = "paid"

// MaxTransactionIDLength bounds the id sent as Idempotency-Key: the
// longest transaction id there is (scorekeeper.MaxTxIDLength).
const MaxTransactionIDLength = scorekeeper.MaxTxIDLength

// maxBodyBytes caps how much of a response is read; a real answer is a few
// hundred bytes.
const maxBodyBytes = 1 << 20

// ErrInvalidRequest is wrapped by the error Pay returns for a Request it
// refuses to send. It is a bug in the caller, never worth a retry.
var ErrInvalidRequest = errors.New("invalid payout request")

// Client sends payouts to the provider. It is safe for concurrent use.
type Client struct {
	endpoint string
	timeout  time.Duration
	http     *http.Client
}

// New returns a Client for the provider at baseURL (absolute http or https
// URL, optionally with a path prefix), giving each request at most timeout.
// A nil httpClient gets a client of its own rather than http.DefaultClient,
// so nothing else in the process can change its behaviour.
func New(baseURL string, timeout time.Duration, httpClient *http.Client) (*Client, error) {
	u, err := httpx.ParseBaseURL(baseURL)
	if err != nil {
		return nil, fmt.Errorf("payout: %w", err)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("payout: timeout must be positive, got %s", timeout)
	}
	if httpClient == nil {
		httpClient = &http.Client{}
	}
	return &Client{endpoint: u.JoinPath("payouts").String(), timeout: timeout, http: httpClient}, nil
}

// Request is one payout to send.
type Request struct {
	// TransactionID is the upstream payout transaction's id. It is both the
	// Idempotency-Key and the reference the provider shows on the transfer.
	TransactionID string
	// UserID is the user to pay.
	UserID string
	// Amount is what to pay, in EUR; it must be positive.
	Amount scorekeeper.Amount
}

// validate rejects a request before it reaches the provider.
func (r Request) validate() error {
	switch {
	case r.TransactionID == "":
		return fmt.Errorf("%w: transaction id is empty", ErrInvalidRequest)
	case len(r.TransactionID) > MaxTransactionIDLength:
		return fmt.Errorf("%w: transaction id is longer than %d bytes", ErrInvalidRequest, MaxTransactionIDLength)
	case !headerSafe(r.TransactionID):
		return fmt.Errorf("%w: transaction id %q contains control characters", ErrInvalidRequest, r.TransactionID)
	case !scorekeeper.ValidUserID(r.UserID):
		return fmt.Errorf("%w: user id %q is invalid", ErrInvalidRequest, r.UserID)
	case r.Amount <= 0:
		return fmt.Errorf("%w: amount %s must be greater than 0", ErrInvalidRequest, r.Amount)
	}
	return nil
}

// headerSafe reports whether s can be sent as a header value unchanged; an
// Idempotency-Key the transport rewrote or refused would break idempotency.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// Result is the provider's confirmation of a completed payout.
type Result struct {
	// ID is the provider's id for the payout.
	ID string
	// Status is always StatusPaid: anything else is not a Result.
	Status string
}

// requestBody is the provider's wire format. Amount renders as a plain JSON
// number (19.2), exactly, via scorekeeper.Amount's MarshalJSON.
type requestBody struct {
	UserID    string             `json:"userId"`
	Amount    scorekeeper.Amount `json:"amount"`
	Currency  string             `json:"currency"`
	Reference string             `json:"reference"`
}

// resultBody is the provider's answer to a successful payout.
type resultBody struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// errorBody is the provider's answer to a rejected payout.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Pay sends req to the provider once. It returns:
//   - the Result when the provider confirms the payout as paid (200/201);
//   - *RejectedError on 422: the provider refused the payout for good;
//   - *TransientError on 429, 408 and 5xx: retry later with the same
//     request;
//   - *MalformedResponseError when a 2xx answer is not a paid confirmation:
//     retry, the idempotency key makes it safe;
//   - *StatusError on any other status (400, 401, 404, 409, …): a
//     misconfiguration or a bug, not retryable, and not a reason to fail
//     the payout;
//   - a wrapped transport or context error otherwise (a timeout satisfies
//     errors.Is(err, context.DeadlineExceeded)); the payout may or may not
//     have gone through, so retry with the same request;
//   - an error wrapping ErrInvalidRequest, without sending anything, for an
//     invalid req.
//
// Retryable classifies all of these in one place.
func (c *Client) Pay(ctx context.Context, req Request) (Result, error) {
	if err := req.validate(); err != nil {
		return Result{}, err
	}
	body, err := json.Marshal(requestBody{
		UserID:    req.UserID,
		Amount:    req.Amount,
		Currency:  Currency,
		Reference: req.TransactionID,
	})
	if err != nil {
		return Result{}, fmt.Errorf("payout: encode request: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("payout: build request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("Idempotency-Key", req.TransactionID)

	resp, err := c.http.Do(hreq)
	if err != nil {
		return Result{}, fmt.Errorf("payout: send %s: %w", req.TransactionID, err)
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		_ = resp.Body.Close()
	}()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		// Keep a timeout while reading the answer visible as one.
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return Result{}, fmt.Errorf("payout: read answer for %s: %w", req.TransactionID, err)
	}

	code := resp.StatusCode
	switch {
	case code >= 200 && code <= 299:
		return decodeResult(code, respBody)
	case code == http.StatusUnprocessableEntity:
		return Result{}, decodeRejection(respBody)
	case code == http.StatusTooManyRequests:
		return Result{}, &TransientError{
			StatusCode: code,
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			Body:       truncateUTF8(string(respBody), maxErrorBody),
		}
	case transientStatus(code):
		return Result{}, &TransientError{StatusCode: code, Body: truncateUTF8(string(respBody), maxErrorBody)}
	default:
		return Result{}, &StatusError{StatusCode: code, Body: truncateUTF8(string(respBody), maxErrorBody)}
	}
}

// decodeResult accepts a 2xx only as a confirmed payment. Anything else —
// "pending", a missing id, an HTML page from a proxy — cannot be recorded as
// paid, and the idempotent retry will get the provider's real answer.
func decodeResult(code int, body []byte) (Result, error) {
	if len(body) > maxBodyBytes {
		return Result{}, &MalformedResponseError{StatusCode: code, Reason: fmt.Sprintf("body is larger than %d bytes", maxBodyBytes)}
	}
	var rb resultBody
	if err := json.Unmarshal(body, &rb); err != nil {
		return Result{}, &MalformedResponseError{StatusCode: code, Reason: "body is not a JSON payout: " + truncateUTF8(string(body), 64)}
	}
	switch {
	case rb.ID == "":
		return Result{}, &MalformedResponseError{StatusCode: code, Reason: "payout id is missing"}
	case rb.Status != StatusPaid:
		return Result{}, &MalformedResponseError{StatusCode: code, Reason: fmt.Sprintf("status is %q, want %q", rb.Status, StatusPaid)}
	}
	return Result{ID: rb.ID, Status: rb.Status}, nil
}

// decodeRejection turns a 422 into a RejectedError. The status alone makes
// the rejection final; a body without the expected error object still
// yields one, with the body as its message, so the failure has a reason.
func decodeRejection(body []byte) *RejectedError {
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code == "" {
		return &RejectedError{Code: CodeUnprocessable, Message: truncateUTF8(string(body), maxErrorBody)}
	}
	return &RejectedError{Code: eb.Error.Code, Message: truncateUTF8(eb.Error.Message, maxErrorBody)}
}
