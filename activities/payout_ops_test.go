package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/db"
)

// Ensure the operator actions' activities against a real store and
// provider: a canceled payout is never sent (SendPayout finds it settled
// and the provider has no payment for its key), a sent one cannot be
// canceled, another user's payout is unknown, and a hold empties the
// listing until it is released.
func TestPayoutOperations(t *testing.T) {
	f := newPayoutFixture(t, 5*time.Second)
	ctx := context.Background()
	exec := func(fn any, in any, out any) error {
		t.Helper()
		v, err := f.env.ExecuteActivity(fn, in)
		if err != nil {
			return err
		}
		require.NoError(t, v.Get(out))
		return nil
	}

	t.Run("CancelNeverSent", func(t *testing.T) {
		var rec scorekeeper.Payout
		require.NoError(t, exec(f.acts.CancelPayout, activities.PayoutActionInput{UserID: "445566", TransactionID: "p2", Reason: "duplicate", By: "alice"}, &rec))
		require.Equal(t, scorekeeper.PayoutCanceled, rec.Status)
		require.Equal(t, "canceled by alice: duplicate", rec.Reason)
		require.Equal(t, "20", f.summary(t, "445566").Payout.String(), "p2 (5) left payout")

		res, err := f.send(t, activities.SendPayoutInput{TransactionID: "p2", UserID: "445566", Amount: scorekeeper.MustParseAmount("5")})
		require.NoError(t, err)
		require.Equal(t, activities.SendPayoutResult{Status: scorekeeper.PayoutCanceled, Reason: rec.Reason, Settled: true}, res)
		require.Zero(t, f.provider.PaymentsByKey()["p2"], "a canceled payout never reaches the provider")
		p, err := db.GetPayout(ctx, f.db, "p2")
		require.NoError(t, err)
		require.Zero(t, p.Attempts)
	})
	t.Run("ErrCancelSent", func(t *testing.T) {
		_, err := f.send(t, p1Send)
		require.NoError(t, err)
		var rec scorekeeper.Payout
		err = exec(f.acts.CancelPayout, activities.PayoutActionInput{UserID: "445566", TransactionID: "p1", By: "alice"}, &rec)
		requireAppError(t, err, activities.ErrTypePayoutActionConflict, true)
	})
	t.Run("ErrOtherUsersPayout", func(t *testing.T) {
		var rec scorekeeper.Payout
		err := exec(f.acts.CancelPayout, activities.PayoutActionInput{UserID: "445566", TransactionID: "c1", By: "alice"}, &rec)
		requireAppError(t, err, activities.ErrTypePayoutNotFound, true)
		err = exec(f.acts.GetUserPayout, activities.PayoutActionInput{UserID: "445566", TransactionID: "nope", By: "alice"}, &rec)
		requireAppError(t, err, activities.ErrTypePayoutNotFound, true)
		p, err := db.GetPayout(ctx, f.db, "c1")
		require.NoError(t, err)
		require.Equal(t, scorekeeper.PayoutRequested, p.Status)
	})
	t.Run("HoldEmptiesListing", func(t *testing.T) {
		var h activities.PayoutHold
		require.NoError(t, exec(f.acts.HoldPayouts, activities.HoldPayoutsInput{UserID: "closed", Reason: "fraud report", By: "alice"}, &h))
		require.Equal(t, "fraud report", h.Reason)
		var list activities.ListPayoutsResult
		require.NoError(t, exec(f.acts.ListPayouts, activities.ListPayoutsInput{UserID: "closed", Limit: 10}, &list))
		require.Empty(t, list.Payouts)
		require.Equal(t, &h, list.Hold)

		var released bool
		require.NoError(t, exec(f.acts.ReleasePayouts, activities.ReleasePayoutsInput{UserID: "closed", By: "bob"}, &released))
		require.True(t, released)
		var after activities.ListPayoutsResult
		require.NoError(t, exec(f.acts.ListPayouts, activities.ListPayoutsInput{UserID: "closed", Limit: 10}, &after))
		require.Nil(t, after.Hold)
		require.Len(t, after.Payouts, 1)

		err := exec(f.acts.HoldPayouts, activities.HoldPayoutsInput{UserID: "closed", Reason: "", By: "alice"}, &h)
		requireAppError(t, err, activities.ErrTypePayoutActionInvalid, true)
	})
}
