package activities_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/db"
	"scorekeeper/db/dbtest"
	"scorekeeper/mockapi"
	"scorekeeper/payout"
)

// payoutStoredAt is when the seeded payouts were stored.
var payoutStoredAt = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// payoutFixture is a real Postgres store seeded with payouts and the mock
// payout provider behind a real HTTP server.
type payoutFixture struct {
	db       *bun.DB
	provider *mockapi.Server
	acts     *activities.Activities
	env      *testsuite.TestActivityEnvironment
}

// newPayoutFixture seeds two users: 445566 (earned 50, payouts p1 = 20 and
// p2 = 5) and closed (earned 30, payout c1 = 10), whose account the
// provider has closed (422). The client gives each request clientTimeout.
func newPayoutFixture(t *testing.T, clientTimeout time.Duration) *payoutFixture {
	t.Helper()
	d := dbtest.NewPostgres(t)
	at := func(sec int) time.Time { return time.Date(2023, 2, 1, 0, 0, sec, 0, time.UTC) }
	_, err := db.ApplyBatch(context.Background(), d, db.Batch{Transactions: []scorekeeper.Transaction{
		{ID: "e1", UserID: "445566", CreatedAt: at(1), Type: scorekeeper.TxEarned, Amount: scorekeeper.MustParseAmount("50")},
		{ID: "p2", UserID: "445566", CreatedAt: at(3), Type: scorekeeper.TxPayout, Amount: scorekeeper.MustParseAmount("5")},
		{ID: "p1", UserID: "445566", CreatedAt: at(2), Type: scorekeeper.TxPayout, Amount: scorekeeper.MustParseAmount("20")},
		{ID: "e2", UserID: "closed", CreatedAt: at(1), Type: scorekeeper.TxEarned, Amount: scorekeeper.MustParseAmount("30")},
		{ID: "c1", UserID: "closed", CreatedAt: at(2), Type: scorekeeper.TxPayout, Amount: scorekeeper.MustParseAmount("10")},
	}}, payoutStoredAt)
	require.NoError(t, err)

	provider, err := mockapi.New(mockapi.Config{Seed: 7, Users: 1, PayoutRejectUsers: []string{"closed"}})
	require.NoError(t, err)
	srv := httptest.NewServer(provider)
	t.Cleanup(srv.Close)
	client, err := payout.New(srv.URL, clientTimeout, nil)
	require.NoError(t, err)

	acts := &activities.Activities{
		Store:   db.NewStore(d, db.Budget{}),
		Payouts: client,
		Now:     func() time.Time { return payoutStoredAt.Add(time.Minute) },
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &payoutFixture{db: d, provider: provider, acts: acts, env: env}
}

func (f *payoutFixture) send(t *testing.T, in activities.SendPayoutInput) (activities.SendPayoutResult, error) {
	t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.SendPayout, in)
	if err != nil {
		return activities.SendPayoutResult{}, err
	}
	var res activities.SendPayoutResult
	require.NoError(t, v.Get(&res))
	return res, nil
}

func (f *payoutFixture) record(t *testing.T, in activities.RecordPayoutResultInput) (activities.RecordPayoutResultResult, error) {
	t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.RecordPayoutResult, in)
	if err != nil {
		return activities.RecordPayoutResultResult{}, err
	}
	var res activities.RecordPayoutResultResult
	require.NoError(t, v.Get(&res))
	return res, nil
}

func (f *payoutFixture) summary(t *testing.T, userID string) scorekeeper.Summary {
	t.Helper()
	s, err := db.GetSummary(context.Background(), f.db, userID)
	require.NoError(t, err)
	return s
}

// requireAppError asserts err is an ApplicationError of the given type and
// retryability, and returns it.
func requireAppError(t *testing.T, err error, typ string, nonRetryable bool) *temporal.ApplicationError {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, typ, appErr.Type())
	require.Equal(t, nonRetryable, appErr.NonRetryable())
	return appErr
}

var p1Send = activities.SendPayoutInput{TransactionID: "p1", UserID: "445566", Amount: scorekeeper.MustParseAmount("20")}

func TestListPayouts(t *testing.T) {
	f := newPayoutFixture(t, 5*time.Second)
	list := func(in activities.ListPayoutsInput) (activities.ListPayoutsResult, error) {
		v, err := f.env.ExecuteActivity(f.acts.ListPayouts, in)
		if err != nil {
			return activities.ListPayoutsResult{}, err
		}
		var res activities.ListPayoutsResult
		require.NoError(t, v.Get(&res))
		return res, nil
	}

	t.Run("OldestFirst", func(t *testing.T) {
		res, err := list(activities.ListPayoutsInput{UserID: "445566", Limit: 10})
		require.NoError(t, err)
		require.Len(t, res.Payouts, 2)
		require.Equal(t, "p1", res.Payouts[0].TransactionID, "created first, though stored second")
		require.Equal(t, "20", res.Payouts[0].Amount.String())
		require.Equal(t, "445566", res.Payouts[0].UserID)
		require.Equal(t, "p2", res.Payouts[1].TransactionID)
	})
	t.Run("Limit", func(t *testing.T) {
		res, err := list(activities.ListPayoutsInput{UserID: "445566", Limit: 1})
		require.NoError(t, err)
		require.Len(t, res.Payouts, 1)
		require.Equal(t, "p1", res.Payouts[0].TransactionID)
	})
	t.Run("OnlyRequested", func(t *testing.T) {
		_, err := db.MarkPayoutPaid(context.Background(), f.db, "p1", "po_x", time.Now())
		require.NoError(t, err)
		res, err := list(activities.ListPayoutsInput{UserID: "445566", Limit: 10})
		require.NoError(t, err)
		require.Len(t, res.Payouts, 1)
		require.Equal(t, "p2", res.Payouts[0].TransactionID)
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		_, err := list(activities.ListPayoutsInput{UserID: "445566"})
		requireAppError(t, err, activities.ErrTypePayoutInvalidRequest, true)
	})
}

func TestSendPayout(t *testing.T) {
	// Ensure a payout sent twice (a retry, or a second run) is paid once:
	// the provider replays the idempotency key's first answer.
	t.Run("PaidOnceWhenSentTwice", func(t *testing.T) {
		f := newPayoutFixture(t, 5*time.Second)
		first, err := f.send(t, p1Send)
		require.NoError(t, err)
		require.Equal(t, scorekeeper.PayoutPaid, first.Status)
		require.NotEmpty(t, first.ProviderID)
		second, err := f.send(t, p1Send)
		require.NoError(t, err)
		require.Equal(t, first, second)
		require.Equal(t, map[string]int{"p1": 1}, f.provider.PaymentsByKey())
		require.Equal(t, "20", f.provider.Paid()["445566"].String())

		rec, err := f.record(t, activities.RecordPayoutResultInput{TransactionID: "p1", Status: first.Status, ProviderID: first.ProviderID})
		require.NoError(t, err)
		require.Equal(t, activities.RecordPayoutResultResult{Status: scorekeeper.PayoutPaid, ProviderID: first.ProviderID}, rec)
		s := f.summary(t, "445566")
		require.Equal(t, "20", s.PaidOut.String())
		require.Equal(t, "25", s.Payout.String(), "paid payouts stay in payout")
		dbtest.RequireReconciled(t, f.db)
	})

	// Ensure a 422 is a failed result with the provider's code and message,
	// and recording it returns the amount to the balance.
	t.Run("RejectedIsFailed", func(t *testing.T) {
		f := newPayoutFixture(t, 5*time.Second)
		before := f.summary(t, "closed")
		require.Equal(t, "20", before.Balance().String())

		res, err := f.send(t, activities.SendPayoutInput{TransactionID: "c1", UserID: "closed", Amount: scorekeeper.MustParseAmount("10")})
		require.NoError(t, err, "a rejection is a result, not an error")
		require.Equal(t, scorekeeper.PayoutFailed, res.Status)
		require.Equal(t, "account_closed: the account of user closed is closed", res.Reason)
		require.Empty(t, f.provider.PaymentsByKey())

		rec, err := f.record(t, activities.RecordPayoutResultInput{TransactionID: "c1", Status: res.Status, Reason: res.Reason})
		require.NoError(t, err)
		require.Equal(t, scorekeeper.PayoutFailed, rec.Status)
		require.Equal(t, res.Reason, rec.Reason)
		after := f.summary(t, "closed")
		require.Equal(t, "0", after.Payout.String())
		require.Equal(t, "10", after.FailedPayout.String())
		require.Equal(t, "30", after.Balance().String(), "the amount is back in the balance")
		p, err := db.GetPayout(context.Background(), f.db, "c1")
		require.NoError(t, err)
		require.Equal(t, scorekeeper.PayoutFailed, p.Status)
		require.Equal(t, res.Reason, p.Reason)
		dbtest.RequireReconciled(t, f.db)
	})

	// Ensure a 429 asks Temporal to come back after its Retry-After, and
	// a 5xx is a plain retryable error; neither pays.
	t.Run("TransientIsRetryable", func(t *testing.T) {
		f := newPayoutFixture(t, 5*time.Second)
		require.NoError(t, f.provider.InjectFault(mockapi.Fault{Target: mockapi.FaultPayouts, Status: 429}))
		_, err := f.send(t, p1Send)
		appErr := requireAppError(t, err, activities.ErrTypePayoutProviderBusy, false)
		require.Equal(t, time.Second, appErr.NextRetryDelay())

		require.NoError(t, f.provider.InjectFault(mockapi.Fault{Target: mockapi.FaultPayouts, Status: 502}))
		_, err = f.send(t, p1Send)
		require.Error(t, err)
		var appErr2 *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr2)
		require.False(t, appErr2.NonRetryable())
		require.Zero(t, appErr2.NextRetryDelay(), "the workflow's backoff decides")
		require.Empty(t, f.provider.PaymentsByKey())

		res, err := f.send(t, p1Send)
		require.NoError(t, err)
		require.Equal(t, scorekeeper.PayoutPaid, res.Status)
		require.Equal(t, map[string]int{"p1": 1}, f.provider.PaymentsByKey())

		// Every request counts, answered or not; none after it settled.
		p, err := db.GetPayout(context.Background(), f.db, "p1")
		require.NoError(t, err)
		require.Equal(t, 3, p.Attempts)
		require.True(t, p.SettledAt.IsZero(), "not settled until recorded")
		_, err = f.record(t, activities.RecordPayoutResultInput{TransactionID: "p1", Status: res.Status, ProviderID: res.ProviderID})
		require.NoError(t, err)
		_, err = f.send(t, p1Send)
		require.NoError(t, err)
		p, err = db.GetPayout(context.Background(), f.db, "p1")
		require.NoError(t, err)
		require.Equal(t, 3, p.Attempts, "a settled payout is not counted again")
		require.False(t, p.SettledAt.IsZero())
	})

	// Ensure an answer lost after the provider paid (client timeout) is a
	// retryable error, and the retry gets the same paid result without a
	// second payment.
	t.Run("TimeoutAfterPayThenRetry", func(t *testing.T) {
		f := newPayoutFixture(t, 200*time.Millisecond)
		require.NoError(t, f.provider.InjectFault(mockapi.Fault{Target: mockapi.FaultPayouts, AfterPay: true, Delay: 2 * time.Second}))
		_, err := f.send(t, p1Send)
		require.Error(t, err)
		require.Contains(t, err.Error(), "deadline exceeded")
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.False(t, appErr.NonRetryable())
		require.Equal(t, map[string]int{"p1": 1}, f.provider.PaymentsByKey(), "the provider paid before the answer was lost")
		p, err := db.GetPayout(context.Background(), f.db, "p1")
		require.NoError(t, err)
		require.Equal(t, scorekeeper.PayoutRequested, p.Status, "no answer, no change")

		res, err := f.send(t, p1Send)
		require.NoError(t, err)
		require.Equal(t, scorekeeper.PayoutPaid, res.Status)
		require.Equal(t, f.provider.Payments()[0].ProviderID, res.ProviderID)
		require.Equal(t, map[string]int{"p1": 1}, f.provider.PaymentsByKey())
	})

	// Ensure a 409 (the key used with another body) is neither a result
	// nor fatal: a retryable error of its own type for the workflow to
	// hold, leaving the payout requested.
	t.Run("ProviderConflict", func(t *testing.T) {
		f := newPayoutFixture(t, 5*time.Second)
		_, err := f.send(t, p1Send)
		require.NoError(t, err)
		other := p1Send
		other.Amount = scorekeeper.MustParseAmount("21")
		_, err = f.send(t, other)
		appErr := requireAppError(t, err, activities.ErrTypePayoutProviderConflict, false)
		require.Contains(t, appErr.Error(), "409")
		require.Equal(t, map[string]int{"p1": 1}, f.provider.PaymentsByKey())
	})

	// Ensure a request the client refuses to send is not retried as is.
	t.Run("ErrInvalidRequest", func(t *testing.T) {
		f := newPayoutFixture(t, 5*time.Second)
		_, err := f.send(t, activities.SendPayoutInput{TransactionID: "p1", UserID: "not a user id", Amount: 100})
		requireAppError(t, err, activities.ErrTypePayoutInvalidRequest, true)
		require.Empty(t, f.provider.PaymentsByKey())
	})
}

func TestRecordPayoutResult(t *testing.T) {
	f := newPayoutFixture(t, 5*time.Second)
	t.Run("PaidTwiceIsNoop", func(t *testing.T) {
		in := activities.RecordPayoutResultInput{TransactionID: "p1", Status: scorekeeper.PayoutPaid, ProviderID: "po_1"}
		for range 2 {
			res, err := f.record(t, in)
			require.NoError(t, err)
			require.Equal(t, activities.RecordPayoutResultResult{Status: scorekeeper.PayoutPaid, ProviderID: "po_1"}, res)
		}
		require.Equal(t, "20", f.summary(t, "445566").PaidOut.String())
		p, err := db.GetPayout(context.Background(), f.db, "p1")
		require.NoError(t, err)
		require.Equal(t, payoutStoredAt.Add(time.Minute), p.UpdatedAt, "recorded at the activities' clock")
	})
	t.Run("ConflictIsReported", func(t *testing.T) {
		res, err := f.record(t, activities.RecordPayoutResultInput{TransactionID: "p1", Status: scorekeeper.PayoutFailed, Reason: "late"})
		require.NoError(t, err)
		require.Equal(t, activities.RecordPayoutResultResult{Status: scorekeeper.PayoutPaid, ProviderID: "po_1", Conflict: true}, res)
		require.Equal(t, "20", f.summary(t, "445566").PaidOut.String())
		dbtest.RequireReconciled(t, f.db)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := f.record(t, activities.RecordPayoutResultInput{TransactionID: "nope", Status: scorekeeper.PayoutPaid, ProviderID: "po"})
		requireAppError(t, err, activities.ErrTypePayoutNotFound, true)
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		for _, in := range []activities.RecordPayoutResultInput{
			{TransactionID: "p2", Status: scorekeeper.PayoutPaid},
			{TransactionID: "p2", Status: scorekeeper.PayoutFailed},
			{TransactionID: "p2", Status: scorekeeper.PayoutRequested},
		} {
			_, err := f.record(t, in)
			requireAppError(t, err, activities.ErrTypePayoutInvalidRequest, true)
		}
		p, err := db.GetPayout(context.Background(), f.db, "p2")
		require.NoError(t, err)
		require.Equal(t, scorekeeper.PayoutRequested, p.Status)
	})
}

// fakeStarter records NotifyPayouts calls and fails for chosen users.
type fakeStarter struct {
	mu       sync.Mutex
	notified []string
	fail     map[string]bool
}

func (s *fakeStarter) NotifyPayouts(_ context.Context, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail[userID] {
		return errors.New("temporal unavailable")
	}
	s.notified = append(s.notified, userID)
	return nil
}

func TestRecoverPayouts(t *testing.T) {
	f := newPayoutFixture(t, 5*time.Second)
	// A third user, whose payout was stored a minute ago: too fresh to
	// recover when OlderThan is 5 minutes.
	_, err := db.ApplyBatch(context.Background(), f.db, db.Batch{Transactions: []scorekeeper.Transaction{
		{ID: "f1", UserID: "fresh", CreatedAt: payoutStoredAt, Type: scorekeeper.TxPayout, Amount: 100},
	}}, payoutStoredAt.Add(9*time.Minute))
	require.NoError(t, err)
	now := payoutStoredAt.Add(10 * time.Minute)
	f.acts.Now = func() time.Time { return now }
	recoverWith := func(t *testing.T, starter activities.PayoutStarter, in activities.RecoverPayoutsInput) activities.RecoverPayoutsResult {
		t.Helper()
		f.acts.PayoutStarter = starter
		v, err := f.env.ExecuteActivity(f.acts.RecoverPayouts, in)
		require.NoError(t, err)
		var res activities.RecoverPayoutsResult
		require.NoError(t, v.Get(&res))
		return res
	}

	t.Run("OK", func(t *testing.T) {
		s := &fakeStarter{}
		res := recoverWith(t, s, activities.RecoverPayoutsInput{OlderThan: 5 * time.Minute})
		require.Equal(t, activities.RecoverPayoutsResult{Notified: 2}, res)
		require.Equal(t, []string{"445566", "closed"}, s.notified)
	})
	t.Run("Paging", func(t *testing.T) {
		s := &fakeStarter{}
		res := recoverWith(t, s, activities.RecoverPayoutsInput{Limit: 1})
		require.Equal(t, 3, res.Notified)
		require.Equal(t, []string{"445566", "closed", "fresh"}, s.notified)
	})
	t.Run("NothingStale", func(t *testing.T) {
		s := &fakeStarter{}
		res := recoverWith(t, s, activities.RecoverPayoutsInput{OlderThan: time.Hour})
		require.Zero(t, res.Notified)
		require.Empty(t, s.notified)
	})
	t.Run("SettledAreSkipped", func(t *testing.T) {
		for _, id := range []string{"p1", "p2"} {
			_, err := db.MarkPayoutPaid(context.Background(), f.db, id, "po_"+id, now)
			require.NoError(t, err)
		}
		s := &fakeStarter{}
		res := recoverWith(t, s, activities.RecoverPayoutsInput{OlderThan: 5 * time.Minute})
		require.Equal(t, 1, res.Notified)
		require.Equal(t, []string{"closed"}, s.notified)
	})
	t.Run("FailuresAreCounted", func(t *testing.T) {
		s := &fakeStarter{fail: map[string]bool{"closed": true}}
		res := recoverWith(t, s, activities.RecoverPayoutsInput{})
		require.Equal(t, activities.RecoverPayoutsResult{Notified: 1, Failed: 1}, res)
		require.Equal(t, []string{"fresh"}, s.notified)
	})
	t.Run("NoStarter", func(t *testing.T) {
		res := recoverWith(t, nil, activities.RecoverPayoutsInput{})
		require.Zero(t, res.Notified)
	})
}
