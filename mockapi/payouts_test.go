package mockapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
)

func TestPayouts(t *testing.T) {
	const key = "41bbdf81-0c3a-4a7e-9b0e-5d1c2f3a4b5c"

	t.Run("OK", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		status, _, first := postPayout(t, ts.URL, key, payoutBody("074092", "30.05", key))
		require.Equal(t, http.StatusCreated, status)
		var res struct{ ID, Status string }
		require.NoError(t, json.Unmarshal([]byte(first), &res))
		require.True(t, strings.HasPrefix(res.ID, "po_"), res.ID)
		require.Equal(t, "paid", res.Status)

		// Ensure a replay answers the stored result and pays nothing more.
		status, _, again := postPayout(t, ts.URL, key, payoutBody("074092", "30.05", key))
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, first, again)

		require.Equal(t, map[string]scorekeeper.Amount{"074092": scorekeeper.MustParseAmount("30.05")}, s.Paid())
		require.Equal(t, map[string]int{key: 1}, s.PaymentsByKey())
		require.Len(t, s.Payments(), 1)
		require.Equal(t, res.ID, s.Payments()[0].ProviderID)
		require.Empty(t, s.Rejected())
	})

	t.Run("AmountTextIsExact", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		// 0.1 + 0.2 must be exactly 0.3; 1.50 and 1.5e1 are exact too.
		for i, a := range []string{"0.1", "0.2", "1.50", "1.5e1"} {
			k := key + string(rune('a'+i))
			status, _, body := postPayout(t, ts.URL, k, payoutBody("000007", a, k))
			require.Equal(t, http.StatusCreated, status, body)
		}
		require.Equal(t, scorekeeper.MustParseAmount("16.8"), s.Paid()["000007"])
	})

	t.Run("ConcurrentSameKeyPaysOnce", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, func(c *Config) { c.PayoutLatency = 5 * time.Millisecond })
		var wg sync.WaitGroup
		statuses := make([]int, 20)
		bodies := make([]string, 20)
		errs := make([]error, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i], _, bodies[i], errs[i] = doPayout(ts.URL, key, payoutBody("074092", "30", key))
			}()
		}
		wg.Wait()
		created := 0
		for i := range 20 {
			require.NoError(t, errs[i])
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, statuses[i])
			require.Equal(t, bodies[0], bodies[i])
			if statuses[i] == http.StatusCreated {
				created++
			}
		}
		require.Equal(t, 1, created)
		require.Equal(t, map[string]int{key: 1}, s.PaymentsByKey())
		require.Equal(t, scorekeeper.MustParseAmount("30"), s.Paid()["074092"])
	})

	t.Run("RejectedUserStableOnReplay", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, func(c *Config) { c.PayoutRejectUsers = []string{"123456"} })
		status, _, first := postPayout(t, ts.URL, key, payoutBody("123456", "10", key))
		require.Equal(t, http.StatusUnprocessableEntity, status)
		require.Equal(t, "account_closed", errorCode(t, []byte(first)))
		status, _, again := postPayout(t, ts.URL, key, payoutBody("123456", "10", key))
		require.Equal(t, http.StatusUnprocessableEntity, status)
		require.Equal(t, first, again)
		require.Empty(t, s.Paid())
		require.Empty(t, s.PaymentsByKey())
		require.Equal(t, []string{key}, s.Rejected())
		require.Equal(t, int64(1), s.Stats().Payouts.Replayed)
	})

	t.Run("RejectRateIsStablePerUser", func(t *testing.T) {
		a, _, _ := MustNewServer(t, func(c *Config) { c.PayoutRejectRate = 0.3 })
		b, _, _ := MustNewServer(t, func(c *Config) { c.PayoutRejectRate = 0.3 })
		rejected := 0
		for _, u := range a.Users() {
			require.Equal(t, a.IsRejectedUser(u), b.IsRejectedUser(u), u)
			if a.IsRejectedUser(u) {
				rejected++
			}
		}
		require.Positive(t, rejected)
		require.Less(t, rejected, len(a.Users()))
	})

	t.Run("ErrConflictOnDifferentBody", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		status, _, _ := postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
		require.Equal(t, http.StatusCreated, status)
		for _, body := range []string{payoutBody("074092", "31", key), payoutBody("074093", "30", key)} {
			status, _, resp := postPayout(t, ts.URL, key, body)
			require.Equal(t, http.StatusConflict, status)
			require.Equal(t, "idempotency_conflict", errorCode(t, []byte(resp)))
		}
		// The stored result still answers the original request.
		status, _, _ = postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, map[string]int{key: 1}, s.PaymentsByKey())
		require.Equal(t, 2, s.IdempotencyConflicts())
		require.Equal(t, int64(2), s.Stats().Payouts.Conflicts)
	})

	t.Run("NoConflictOnReplayOrRejection", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, func(c *Config) { c.PayoutRejectUsers = []string{"123456"} })
		for range 2 {
			postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
			postPayout(t, ts.URL, key+"r", payoutBody("123456", "30", key+"r"))
		}
		require.Zero(t, s.IdempotencyConflicts())
	})

	t.Run("LedgerRecordsEachPayment", func(t *testing.T) {
		// The same payout sent under a second key is paid twice: the
		// ledger shows both payments (each key paid once), with each
		// key, user, amount and its own provider reference.
		s, ts, _ := MustNewServer(t, nil)
		for _, k := range []string{key, key + "-again"} {
			status, _, _ := postPayout(t, ts.URL, k, payoutBody("074092", "30.05", k))
			require.Equal(t, http.StatusCreated, status)
		}
		postPayout(t, ts.URL, key, payoutBody("074092", "30.05", key)) // a replay pays nothing
		ps := s.Payments()
		require.Len(t, ps, 2)
		require.Equal(t, map[string]int{key: 1, key + "-again": 1}, s.PaymentsByKey())
		for i, k := range []string{key, key + "-again"} {
			require.Equal(t, k, ps[i].Key)
			require.Equal(t, "074092", ps[i].UserID)
			require.Equal(t, scorekeeper.MustParseAmount("30.05"), ps[i].Amount)
			require.True(t, strings.HasPrefix(ps[i].ProviderID, "po_"), ps[i].ProviderID)
		}
		require.NotEqual(t, ps[0].ProviderID, ps[1].ProviderID)
		require.Equal(t, scorekeeper.MustParseAmount("60.10"), s.Paid()["074092"])
	})

	t.Run("ErrBadRequest", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		for name, c := range map[string]struct{ key, body, code string }{
			"ErrMissingKey":        {"", payoutBody("074092", "30", ""), "missing_idempotency_key"},
			"ErrReferenceMismatch": {key, payoutBody("074092", "30", "other"), "invalid_request"},
			"ErrCurrency":          {key, `{"userId":"074092","amount":30,"currency":"USD","reference":"` + key + `"}`, "invalid_request"},
			"ErrNoCurrency":        {key, `{"userId":"074092","amount":30,"reference":"` + key + `"}`, "invalid_request"},
			"ErrAmountString":      {key, payoutBody("074092", `"30"`, key), "invalid_request"},
			"ErrAmountZero":        {key, payoutBody("074092", "0", key), "invalid_request"},
			"ErrAmountNegative":    {key, payoutBody("074092", "-5", key), "invalid_request"},
			"ErrAmountDecimals":    {key, payoutBody("074092", "1.234", key), "invalid_request"},
			"ErrAmountMissing":     {key, `{"userId":"074092","currency":"EUR","reference":"` + key + `"}`, "invalid_request"},
			"ErrUserID":            {key, payoutBody("07 4092", "30", key), "invalid_request"},
			"ErrNotJSON":           {key, `userId=074092`, "invalid_request"},
		} {
			t.Run(name, func(t *testing.T) {
				status, _, body := postPayout(t, ts.URL, c.key, c.body)
				require.Equal(t, http.StatusBadRequest, status, body)
				require.Equal(t, c.code, errorCode(t, []byte(body)))
			})
		}
		require.Empty(t, s.PaymentsByKey())
		// A refused request stores nothing: the key is still free.
		status, _, _ := postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
		require.Equal(t, http.StatusCreated, status)
	})

	t.Run("TransientFailuresDontPay", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, func(c *Config) { c.PayoutFailRate = 1 })
		seen := map[int]bool{}
		for range 20 {
			status, hdr, _ := postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
			require.Contains(t, []int{http.StatusServiceUnavailable, http.StatusTooManyRequests}, status)
			require.Equal(t, "1", hdr.Get("Retry-After"))
			seen[status] = true
		}
		require.Len(t, seen, 2, "both 503 and 429")
		require.Empty(t, s.Paid())
		require.Empty(t, s.PaymentsByKey())
		require.Equal(t, int64(20), s.Stats().Payouts.TransientFailures)
	})

	t.Run("InjectedFailureThenRetryPaysOnce", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		require.NoError(t, s.InjectFault(Fault{Target: FaultPayouts, Status: http.StatusInternalServerError}))
		status, _, _ := postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
		require.Equal(t, http.StatusInternalServerError, status)
		require.Empty(t, s.PaymentsByKey())
		status, _, _ = postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
		require.Equal(t, http.StatusCreated, status)
		require.Equal(t, map[string]int{key: 1}, s.PaymentsByKey())
	})

	t.Run("TimeoutAfterPaymentThenReplay", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		require.NoError(t, s.InjectFault(Fault{Target: FaultPayouts, Delay: time.Minute, AfterPay: true}))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/payouts", strings.NewReader(payoutBody("074092", "30", key)))
		require.NoError(t, err)
		req.Header.Set("Idempotency-Key", key)
		_, err = http.DefaultClient.Do(req)
		require.ErrorIs(t, err, context.DeadlineExceeded)

		// The money left although the client saw a timeout; its retry gets
		// the stored success instead of a second payment.
		require.Equal(t, map[string]int{key: 1}, s.PaymentsByKey())
		require.Eventually(t, func() bool { return s.PaymentAnswersLost() == 1 }, 10*time.Second, 10*time.Millisecond,
			"the answer given up on during the delay is lost")
		status, _, body := postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, s.Payments()[0].ProviderID)
		require.Equal(t, map[string]int{key: 1}, s.PaymentsByKey())
	})

	t.Run("ErrorAfterPayment", func(t *testing.T) {
		s, ts, _ := MustNewServer(t, nil)
		require.NoError(t, s.InjectFault(Fault{Target: FaultPayouts, Status: http.StatusBadGateway, AfterPay: true}))
		status, _, _ := postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
		require.Equal(t, http.StatusBadGateway, status)
		require.Equal(t, map[string]int{key: 1}, s.PaymentsByKey())
		require.Equal(t, 1, s.PaymentAnswersLost())
		require.Equal(t, int64(1), s.Stats().Payouts.LostAfterPayment)
		status, _, _ = postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
		require.Equal(t, http.StatusOK, status)
	})

	t.Run("AnswersLostCountOnlyFirstPayments", func(t *testing.T) {
		// An after-pay fault on a replay or a rejection loses no payment's
		// answer; one that is waited out loses nothing.
		s, ts, _ := MustNewServer(t, func(c *Config) { c.PayoutRejectUsers = []string{"123456"} })
		status, _, _ := postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
		require.Equal(t, http.StatusCreated, status)
		require.NoError(t, s.InjectFault(Fault{Target: FaultPayouts, Status: http.StatusBadGateway, AfterPay: true, Count: 2}))
		status, _, _ = postPayout(t, ts.URL, key, payoutBody("074092", "30", key))
		require.Equal(t, http.StatusBadGateway, status, "a replay's answer lost")
		status, _, _ = postPayout(t, ts.URL, key+"r", payoutBody("123456", "30", key+"r"))
		require.Equal(t, http.StatusBadGateway, status, "a rejection's answer lost")
		require.NoError(t, s.InjectFault(Fault{Target: FaultPayouts, Delay: 20 * time.Millisecond, AfterPay: true}))
		status, _, _ = postPayout(t, ts.URL, key+"2", payoutBody("074092", "30", key+"2"))
		require.Equal(t, http.StatusCreated, status, "a delay waited out")
		require.Zero(t, s.PaymentAnswersLost())
		require.Zero(t, s.Stats().Payouts.LostAfterPayment)
	})
}
