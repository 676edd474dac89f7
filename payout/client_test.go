package payout_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/payout"
)

// validRequest is the seed example's payout.
var validRequest = payout.Request{
	TransactionID: "41bbdf81-2f7a-4a4b-9b7c-1f2a3b4c5d6e",
	UserID:        "074092",
	Amount:        scorekeeper.MustParseAmount("19.2"),
}

// MustNewClient returns a Client for handler served by an httptest server
// that is closed when the test ends.
func MustNewClient(tb testing.TB, timeout time.Duration, handler http.HandlerFunc) *payout.Client {
	tb.Helper()
	srv := httptest.NewServer(handler)
	tb.Cleanup(srv.Close)
	c, err := payout.New(srv.URL, timeout, srv.Client())
	require.NoError(tb, err)
	return c
}

func respond(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		name, url string
		timeout   time.Duration
		wantErr   string
	}{
		{"OK", "http://provider.example", time.Second, ""},
		{"OKWithPath", "https://provider.example/v1/", time.Second, ""},
		{"ErrRelative", "/payouts", time.Second, "absolute"},
		{"ErrScheme", "ftp://provider.example", time.Second, "absolute"},
		{"ErrNoHost", "https://", time.Second, "absolute"},
		{"ErrQuery", "http://provider.example?key=1", time.Second, "query"},
		{"ErrUnparseable", "http://[::1", time.Second, "invalid base URL"},
		{"ErrNegativeTimeout", "http://provider.example", -time.Second, "timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := payout.New(tt.url, tt.timeout, nil)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NotNil(t, c)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, c)
		})
	}
}

// Ensure the request on the wire is exactly design §5's.
func TestPay_Request(t *testing.T) {
	type received struct {
		method, path, idempotencyKey, contentType, body string
	}
	for _, tt := range []struct {
		name     string
		amount   string
		wantBody string
	}{
		{"SeedAmount", "19.2", `{"userId":"074092","amount":19.2,"currency":"EUR","reference":"41bbdf81-2f7a-4a4b-9b7c-1f2a3b4c5d6e"}`},
		{"Whole", "12", `{"userId":"074092","amount":12,"currency":"EUR","reference":"41bbdf81-2f7a-4a4b-9b7c-1f2a3b4c5d6e"}`},
		{"Cents", "0.05", `{"userId":"074092","amount":0.05,"currency":"EUR","reference":"41bbdf81-2f7a-4a4b-9b7c-1f2a3b4c5d6e"}`},
		{"Tenth", "0.1", `{"userId":"074092","amount":0.1,"currency":"EUR","reference":"41bbdf81-2f7a-4a4b-9b7c-1f2a3b4c5d6e"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got received
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got = received{r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), r.Header.Get("Content-Type"), string(b)}
				respond(http.StatusOK, `{"id":"po_1","status":"paid"}`)(w, r)
			}))
			t.Cleanup(srv.Close)
			// A path prefix on the base URL is kept.
			c, err := payout.New(srv.URL+"/v1/", time.Second, nil)
			require.NoError(t, err)

			req := validRequest
			req.Amount = scorekeeper.MustParseAmount(tt.amount)
			_, err = c.Pay(context.Background(), req)
			require.NoError(t, err)
			require.Equal(t, received{
				method:         http.MethodPost,
				path:           "/v1/payouts",
				idempotencyKey: validRequest.TransactionID,
				contentType:    "application/json",
				body:           tt.wantBody,
			}, got)
		})
	}
}

func TestPay_OK(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusCreated} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			c := MustNewClient(t, time.Second, respond(status, `{"id":"po_123","status":"paid","amount":19.2}`))
			res, err := c.Pay(context.Background(), validRequest)
			require.NoError(t, err)
			require.Equal(t, payout.Result{ID: "po_123", Status: payout.StatusPaid}, res)
		})
	}
}

// Ensure a retry after a lost answer is the same request, so the provider
// can recognise it and pay nothing twice.
func TestPay_RetryIsIdempotent(t *testing.T) {
	var (
		mu    sync.Mutex
		keys  []string
		paid  = map[string]string{}
		calls int
	)
	c := MustNewClient(t, time.Second, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		key := r.Header.Get("Idempotency-Key")
		keys = append(keys, key)
		if _, ok := paid[key]; !ok {
			paid[key] = "po_" + key[:8]
		}
		if calls == 1 {
			// Paid, but the answer is lost.
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		respond(http.StatusOK, `{"id":"`+paid[key]+`","status":"paid"}`)(w, r)
	})

	_, err := c.Pay(context.Background(), validRequest)
	require.True(t, payout.Retryable(err))
	res, err := c.Pay(context.Background(), validRequest)
	require.NoError(t, err)
	require.Equal(t, "po_41bbdf81", res.ID)
	require.Equal(t, []string{validRequest.TransactionID, validRequest.TransactionID}, keys)
	require.Len(t, paid, 1)
}

func TestPay_MalformedSuccess(t *testing.T) {
	for _, tt := range []struct {
		name, body, wantReason string
	}{
		{"Pending", `{"id":"po_1","status":"pending"}`, `status is "pending"`},
		{"Failed", `{"id":"po_1","status":"failed"}`, `status is "failed"`},
		{"StatusMissing", `{"id":"po_1"}`, `status is ""`},
		{"IDMissing", `{"status":"paid"}`, "payout id is missing"},
		{"IDEmpty", `{"id":"","status":"paid"}`, "payout id is missing"},
		{"Garbage", `<html>OK</html>`, "not a JSON payout"},
		{"Empty", ``, "not a JSON payout"},
		{"WrongTypes", `{"id":1,"status":"paid"}`, "not a JSON payout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := MustNewClient(t, time.Second, respond(http.StatusOK, tt.body))
			res, err := c.Pay(context.Background(), validRequest)
			require.Zero(t, res)
			var me *payout.MalformedResponseError
			require.ErrorAs(t, err, &me)
			require.Equal(t, http.StatusOK, me.StatusCode)
			require.Contains(t, me.Reason, tt.wantReason)
			// The provider accepted the request: only a retry can tell
			// what happened to it.
			require.True(t, payout.Retryable(err))
		})
	}
}

func TestPay_Rejected(t *testing.T) {
	t.Run("WithCode", func(t *testing.T) {
		c := MustNewClient(t, time.Second, respond(http.StatusUnprocessableEntity, `{"error":{"code":"account_closed","message":"The bank account is closed."}}`))
		res, err := c.Pay(context.Background(), validRequest)
		require.Zero(t, res)
		var re *payout.RejectedError
		require.ErrorAs(t, err, &re)
		require.Equal(t, payout.RejectedError{Code: "account_closed", Message: "The bank account is closed."}, *re)
		require.EqualError(t, err, "payout: rejected: account_closed: The bank account is closed.")
		require.False(t, payout.Retryable(err))
	})

	t.Run("CodeOnly", func(t *testing.T) {
		c := MustNewClient(t, time.Second, respond(http.StatusUnprocessableEntity, `{"error":{"code":"limit_exceeded"}}`))
		_, err := c.Pay(context.Background(), validRequest)
		var re *payout.RejectedError
		require.ErrorAs(t, err, &re)
		require.Equal(t, "limit_exceeded", re.Code)
		require.EqualError(t, err, "payout: rejected: limit_exceeded")
	})

	// Ensure a 422 is final even when its body is not the documented shape,
	// and the body becomes the reason.
	t.Run("NoCode", func(t *testing.T) {
		c := MustNewClient(t, time.Second, respond(http.StatusUnprocessableEntity, `invalid IBAN`))
		_, err := c.Pay(context.Background(), validRequest)
		var re *payout.RejectedError
		require.ErrorAs(t, err, &re)
		require.Equal(t, payout.CodeUnprocessable, re.Code)
		require.Equal(t, "invalid IBAN", re.Message)
		require.False(t, payout.Retryable(err))
	})
}

func TestPay_RateLimited(t *testing.T) {
	for _, tt := range []struct {
		name, header string
		want         time.Duration
	}{
		{"Seconds", "30", 30 * time.Second},
		{"Missing", "", 0},
		{"Garbage", "soon", 0},
		{"Capped", "86400", payout.MaxRetryAfter},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := MustNewClient(t, time.Second, func(w http.ResponseWriter, r *http.Request) {
				if tt.header != "" {
					w.Header().Set("Retry-After", tt.header)
				}
				w.WriteHeader(http.StatusTooManyRequests)
			})
			_, err := c.Pay(context.Background(), validRequest)
			var te *payout.TransientError
			require.ErrorAs(t, err, &te)
			require.Equal(t, http.StatusTooManyRequests, te.StatusCode)
			require.Equal(t, tt.want, te.RetryAfter)
			require.True(t, payout.Retryable(err))
		})
	}

	t.Run("HTTPDate", func(t *testing.T) {
		c := MustNewClient(t, time.Second, respond(http.StatusTooManyRequests, ``,
			"Retry-After", time.Now().Add(40*time.Second).UTC().Format(http.TimeFormat)))
		_, err := c.Pay(context.Background(), validRequest)
		var te *payout.TransientError
		require.ErrorAs(t, err, &te)
		require.InDelta(t, 40*time.Second, te.RetryAfter, float64(2*time.Second))
	})
}

func TestPay_Transient(t *testing.T) {
	for _, status := range []int{
		http.StatusInternalServerError,
		http.StatusBadGateway,
		http.StatusServiceUnavailable,
		http.StatusGatewayTimeout,
		http.StatusRequestTimeout,
	} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			c := MustNewClient(t, time.Second, respond(status, `{"error":{"code":"oops"}}`))
			res, err := c.Pay(context.Background(), validRequest)
			require.Zero(t, res)
			var te *payout.TransientError
			require.ErrorAs(t, err, &te)
			require.Equal(t, payout.TransientError{StatusCode: status, Body: `{"error":{"code":"oops"}}`}, *te)
			require.True(t, payout.Retryable(err))
		})
	}
}

func TestPay_StatusError(t *testing.T) {
	for _, status := range []int{
		http.StatusBadRequest,
		http.StatusUnauthorized,
		http.StatusForbidden,
		http.StatusNotFound,
		http.StatusMethodNotAllowed,
		// The key was used with a different body: retrying the same
		// request cannot help.
		http.StatusConflict,
	} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			c := MustNewClient(t, time.Second, respond(status, strings.Repeat("x", 2000)))
			res, err := c.Pay(context.Background(), validRequest)
			require.Zero(t, res)
			var se *payout.StatusError
			require.ErrorAs(t, err, &se)
			require.Equal(t, status, se.StatusCode)
			require.Len(t, se.Body, 512)
			require.False(t, payout.Retryable(err))
		})
	}
}

func TestPay_Timeout(t *testing.T) {
	// block holds a request until the client gives up. The server notices
	// a closed connection only once the request body has been read.
	block := func(r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}

	t.Run("BeforeAnswer", func(t *testing.T) {
		c := MustNewClient(t, 50*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			block(r)
		})
		start := time.Now()
		res, err := c.Pay(context.Background(), validRequest)
		require.Zero(t, res)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 2*time.Second)
		// The provider may have paid: the caller must retry, not fail.
		require.True(t, payout.Retryable(err))
	})

	t.Run("DuringBody", func(t *testing.T) {
		c := MustNewClient(t, 50*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"id":`)
			w.(http.Flusher).Flush()
			block(r)
		})
		_, err := c.Pay(context.Background(), validRequest)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.True(t, payout.Retryable(err))
	})

	t.Run("ConnectionRefused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		c, err := payout.New(srv.URL, time.Second, nil)
		require.NoError(t, err)
		_, err = c.Pay(context.Background(), validRequest)
		require.ErrorContains(t, err, "payout: send "+validRequest.TransactionID)
		require.True(t, payout.Retryable(err))
	})
}

func TestPay_InvalidRequest(t *testing.T) {
	var hits atomic.Int32
	c := MustNewClient(t, time.Second, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		respond(http.StatusOK, `{"id":"po_1","status":"paid"}`)(w, r)
	})
	with := func(f func(*payout.Request)) payout.Request {
		r := validRequest
		f(&r)
		return r
	}
	for _, tt := range []struct {
		name    string
		req     payout.Request
		wantErr string
	}{
		{"ErrTransactionIDEmpty", with(func(r *payout.Request) { r.TransactionID = "" }), "transaction id is empty"},
		{"ErrTransactionIDTooLong", with(func(r *payout.Request) { r.TransactionID = strings.Repeat("a", 129) }), "longer than 128"},
		{"ErrTransactionIDControlChars", with(func(r *payout.Request) { r.TransactionID = "a\r\nX-Evil: 1" }), "control characters"},
		{"ErrUserIDEmpty", with(func(r *payout.Request) { r.UserID = "" }), "user id"},
		{"ErrUserIDInvalid", with(func(r *payout.Request) { r.UserID = "07 40/92" }), "user id"},
		{"ErrAmountZero", with(func(r *payout.Request) { r.Amount = 0 }), "amount 0 must be greater than 0"},
		{"ErrAmountNegative", with(func(r *payout.Request) { r.Amount = scorekeeper.MustParseAmount("-5") }), "amount -5 must be greater than 0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Pay(context.Background(), tt.req)
			require.Zero(t, res)
			require.ErrorIs(t, err, payout.ErrInvalidRequest)
			require.ErrorContains(t, err, tt.wantErr)
			require.False(t, payout.Retryable(err))
		})
	}
	// Ensure nothing invalid ever reached the provider.
	require.Zero(t, hits.Load())
}

func TestRetryable(t *testing.T) {
	require.False(t, payout.Retryable(nil))
	require.True(t, payout.Retryable(errors.New("connection reset")))
	require.True(t, payout.Retryable(context.Canceled))
	require.False(t, payout.Retryable(&payout.RejectedError{Code: "x"}))
	require.False(t, payout.Retryable(&payout.StatusError{StatusCode: 401}))
	require.True(t, payout.Retryable(&payout.TransientError{StatusCode: 503}))
	require.True(t, payout.Retryable(&payout.MalformedResponseError{StatusCode: 200}))
}
