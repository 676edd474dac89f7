package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/web"
)

// PayoutHold returns the user's hold (nil: none), as db.GetPayoutHold.
func (s *fakeStore) PayoutHold(ctx context.Context, userID string) (*scorekeeper.PayoutHold, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return nil, s.err
	}
	if h, ok := s.holds[userID]; ok {
		return &h, nil
	}
	return nil, nil
}

// fakeOperator carries out operator actions on a fakeStore with the
// rules of the store and the payout workflow: only a payout never sent can be canceled, only one waiting for an
// operator (requested, sent before) can be retried.
type fakeOperator struct {
	store *fakeStore
	err   error
	// retried lists the payouts retried.
	retried []string
}

var _ scorekeeper.PayoutOperator = (*fakeOperator)(nil)

func (o *fakeOperator) HoldPayouts(ctx context.Context, userID, reason, by string) (scorekeeper.PayoutHold, error) {
	if o.err != nil {
		return scorekeeper.PayoutHold{}, o.err
	}
	s := o.store
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.holds[userID]
	if !ok {
		h = scorekeeper.PayoutHold{UserID: userID, By: by, HeldAt: t0}
	}
	h.Reason = reason
	s.holds[userID] = h
	return h, nil
}

func (o *fakeOperator) ReleasePayouts(ctx context.Context, userID, by string) error {
	if o.err != nil {
		return o.err
	}
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	delete(o.store.holds, userID)
	return nil
}

// payout finds the user's payout id (s.mu held).
func (o *fakeOperator) payout(userID, id string) (scorekeeper.Payout, error) {
	p, ok := o.store.payouts[id]
	if !ok || p.UserID != userID {
		return p, scorekeeper.Errorf(scorekeeper.ENotFound, "payout %s not found", id)
	}
	return p, nil
}

func (o *fakeOperator) RetryPayout(ctx context.Context, userID, id, by string) (scorekeeper.Payout, error) {
	if o.err != nil {
		return scorekeeper.Payout{}, o.err
	}
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	p, err := o.payout(userID, id)
	if err != nil {
		return p, err
	}
	if p.Status != scorekeeper.PayoutRequested || p.Attempts == 0 {
		return p, scorekeeper.Errorf(scorekeeper.EConflict, "payout %s is %s and not waiting for an operator", id, p.Status)
	}
	o.retried = append(o.retried, id)
	return p, nil
}

func (o *fakeOperator) CancelPayout(ctx context.Context, userID, id, reason, by string) (scorekeeper.Payout, error) {
	if o.err != nil {
		return scorekeeper.Payout{}, o.err
	}
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	p, err := o.payout(userID, id)
	if err != nil {
		return p, err
	}
	if p.Status != scorekeeper.PayoutRequested || p.Attempts > 0 {
		return p, scorekeeper.Errorf(scorekeeper.EConflict, "payout %s is %s and was sent; it cannot be canceled", id, p.Status)
	}
	p.Status, p.Reason, p.SettledAt = scorekeeper.PayoutCanceled, "canceled by "+by, t0.Add(time.Minute)
	if reason != "" {
		p.Reason += ": " + reason
	}
	o.store.payouts[id] = p
	return p, nil
}

func newOperatorApp(t *testing.T, adminToken string) (*fakeStore, *fakeOperator, func(method, target, body string, headers ...string) (*http.Response, string)) {
	store := newFakeStore().seed()
	store.setAsOf(t0.Add(time.Hour))
	op := &fakeOperator{store: store}
	app, _, _ := MustNewApp(t, web.Config{Store: store, Payouts: op, AdminToken: adminToken})
	call := func(method, target, body string, headers ...string) (*http.Response, string) {
		t.Helper()
		if body != "" {
			headers = append(headers, "Content-Type", "application/json")
		}
		return doBody(t, app, method, target, strings.NewReader(body), headers...)
	}
	return store, op, call
}

// Ensure the operator routes: admin only, answers as the workflow's
// (hold, release, cancel, retry), 404 for an unknown payout or user, 409
// for an action the payout's state does not allow, 400 for bad input, and
// a hold shows as held in the user's payouts.
func TestPayoutActions(t *testing.T) {
	const token = "s3cret"
	auth := []string{"Authorization", "Bearer " + token}
	store, op, call := newOperatorApp(t, token)

	t.Run("ErrUnauthorized", func(t *testing.T) {
		resp, body := call(http.MethodPost, "/api/users/112233/payouts:hold", `{"reason":"x"}`)
		requireError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	})
	t.Run("OKHold", func(t *testing.T) {
		resp, body := call(http.MethodPost, "/api/users/112233/payouts:hold", `{"reason":"fraud report"}`, auth...)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.JSONEq(t, `{"userId":"112233","held":true,"reason":"fraud report","by":"operator","heldAt":"2023-02-01T00:00:00Z"}`, body)

		resp, body = call(http.MethodGet, "/api/users/112233/payouts", "")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.JSONEq(t, `[{"id":"b1","amount":30,"requestedAt":"2023-02-01T00:00:00Z","status":"held",
			"reason":"held by operator: fraud report","providerId":"","attempts":0,"settledAt":null}]`, body)
	})
	t.Run("OKRelease", func(t *testing.T) {
		resp, body := call(http.MethodPost, "/api/users/112233/payouts:release", "", auth...)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.JSONEq(t, `{"userId":"112233","held":false}`, body)
		_, body = call(http.MethodGet, "/api/users/112233/payouts", "")
		require.Contains(t, body, `"status":"requested"`)
	})
	t.Run("OKCancel", func(t *testing.T) {
		resp, body := call(http.MethodPost, "/api/users/112233/payouts/b1:cancel", `{"reason":"duplicate"}`, auth...)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.JSONEq(t, `{"id":"b1","amount":30,"requestedAt":"2023-02-01T00:00:00Z","status":"canceled",
			"reason":"canceled by operator: duplicate","providerId":"","attempts":0,"settledAt":"2023-02-01T00:01:00Z"}`, body)
	})
	t.Run("ErrConflict", func(t *testing.T) {
		resp, body := call(http.MethodPost, "/api/users/112233/payouts/b1:cancel", "", auth...)
		msg := requireError(t, resp, body, http.StatusConflict, "conflict")
		require.Contains(t, msg, "cannot be canceled")
		resp, body = call(http.MethodPost, "/api/users/445566/payouts/a4:retry", "", auth...)
		msg = requireError(t, resp, body, http.StatusConflict, "conflict")
		require.Contains(t, msg, "not waiting for an operator")
	})
	t.Run("OKRetry", func(t *testing.T) {
		store.apply(tx("a9", "445566", scorekeeper.TxPayout, "1"))
		store.mu.Lock()
		p := store.payouts["a9"]
		p.Attempts = 1
		store.payouts["a9"] = p
		store.mu.Unlock()
		resp, body := call(http.MethodPost, "/api/users/445566/payouts/a9:retry", "", auth...)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Contains(t, body, `"id":"a9"`)
		require.Equal(t, []string{"a9"}, op.retried)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for _, target := range []string{"/api/users/445566/payouts/b1:cancel", "/api/users/445566/payouts/nope:retry"} {
			resp, body := call(http.MethodPost, target, "", auth...)
			requireError(t, resp, body, http.StatusNotFound, "not_found")
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		for target, body := range map[string]string{
			"/api/users/445566/payouts:hold":          ``,
			"/api/users/445566/payouts:hold?x=1":      `{"reason":"x"}`,
			"/api/users/445566/payouts:release ":      `{"reason":1}`,
			"/api/users/445566/payouts/a9:cancel":     `{"reason":"x","by":"me"}`,
			"/api/users/445566/payouts/a9:retry":      `{"reason":"x"} {}`,
			"/api/users/bad%20id/payouts:hold":        `{"reason":"x"}`,
			"/api/users/445566/payouts:hold?reason=x": ``,
		} {
			resp, got := call(http.MethodPost, strings.TrimSpace(target), body, auth...)
			requireError(t, resp, got, http.StatusBadRequest, "invalid")
		}
		long := `{"reason":"` + strings.Repeat("x", 501) + `"}`
		resp, body := call(http.MethodPost, "/api/users/445566/payouts:hold", long, auth...)
		requireError(t, resp, body, http.StatusBadRequest, "invalid")
	})
	t.Run("ErrUnavailable", func(t *testing.T) {
		op.err = scorekeeper.Errorf(scorekeeper.EUnavailable, "the workflow service is unavailable; try again shortly")
		defer func() { op.err = nil }()
		resp, body := call(http.MethodPost, "/api/users/445566/payouts:release", "", auth...)
		requireError(t, resp, body, http.StatusServiceUnavailable, "unavailable")
	})
}
