package scorekeeper_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
)

// validTx returns a valid transaction changed by mutate.
func validTx(mutate func(*scorekeeper.Transaction)) scorekeeper.Transaction {
	t := scorekeeper.Transaction{
		ID:        "0b6f1c52-4a8e-4b43-9f0e-3f1d1f6b2a10",
		UserID:    "445566",
		CreatedAt: time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC),
		Type:      scorekeeper.TxEarned,
		Amount:    scorekeeper.MustParseAmount("19.2"),
	}
	if mutate != nil {
		mutate(&t)
	}
	return t
}

func TestTransaction_Validate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(*scorekeeper.Transaction)
		// want is the message of each problem, in wire order; none: valid.
		want []string
	}{
		{"OK", nil, nil},
		{"OKSpent", func(t *scorekeeper.Transaction) { t.Type = scorekeeper.TxSpent }, nil},
		{"OKPayout", func(t *scorekeeper.Transaction) { t.Type = scorekeeper.TxPayout }, nil},
		{"OKOneCent", func(t *scorekeeper.Transaction) { t.Amount = 1 }, nil},
		{"OKIDMaxLength", func(t *scorekeeper.Transaction) { t.ID = strings.Repeat("i", scorekeeper.MaxTxIDLength) }, nil},
		{"OKUserIDMaxLength", func(t *scorekeeper.Transaction) { t.UserID = strings.Repeat("u", 64) }, nil},
		{"ErrIDEmpty", func(t *scorekeeper.Transaction) { t.ID = "" }, []string{"id is empty"}},
		{"ErrIDTooLong", func(t *scorekeeper.Transaction) { t.ID = strings.Repeat("i", 129) }, []string{"id is too long: 129 bytes, max 128"}},
		{"ErrIDControlChars", func(t *scorekeeper.Transaction) { t.ID = "a\nb" }, []string{`id "a\nb" contains control characters`}},
		{"ErrIDDelete", func(t *scorekeeper.Transaction) { t.ID = "a\x7f" }, []string{`id "a\x7f" contains control characters`}},
		{"ErrUserIDEmpty", func(t *scorekeeper.Transaction) { t.UserID = "" }, []string{`userId "" is invalid: want 1-64 characters of [A-Za-z0-9_-]`}},
		{"ErrUserIDBadChars", func(t *scorekeeper.Transaction) { t.UserID = "11 22/33" }, []string{`userId "11 22/33" is invalid: want 1-64 characters of [A-Za-z0-9_-]`}},
		{"ErrUserIDTooLong", func(t *scorekeeper.Transaction) { t.UserID = strings.Repeat("1", 65) }, []string{`userId "` + strings.Repeat("1", 64) + `"… is invalid: want 1-64 characters of [A-Za-z0-9_-]`}},
		{"ErrCreatedAtZero", func(t *scorekeeper.Transaction) { t.CreatedAt = time.Time{} }, []string{"createdAt is the zero time"}},
		{"ErrTypeUnknown", func(t *scorekeeper.Transaction) { t.Type = "refund" }, []string{`type "refund" is unknown: want earned, spent or payout`}},
		{"ErrTypeWrongCase", func(t *scorekeeper.Transaction) { t.Type = "Earned" }, []string{`type "Earned" is unknown: want earned, spent or payout`}},
		{"ErrAmountZero", func(t *scorekeeper.Transaction) { t.Amount = 0 }, []string{"amount 0 must be greater than 0"}},
		{"ErrAmountNegative", func(t *scorekeeper.Transaction) { t.Amount = scorekeeper.MustParseAmount("-5.5") }, []string{"amount -5.5 must be greater than 0"}},
		{"ErrSeveral", func(t *scorekeeper.Transaction) { t.UserID, t.Type, t.Amount = "", "gift", -100 }, []string{
			`userId "" is invalid: want 1-64 characters of [A-Za-z0-9_-]`,
			`type "gift" is unknown: want earned, spent or payout`,
			"amount -1 must be greater than 0",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tx := validTx(tt.mutate)
			var got []string
			for _, p := range tx.Problems() {
				got = append(got, p.Message)
			}
			require.Equal(t, tt.want, got)

			err := tx.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err))
			require.Contains(t, scorekeeper.ErrorMessage(err), strings.Join(tt.want, "; "))
		})
	}

	// Ensure a field a decoder could not read (left zero) is always named,
	// in wire order: upstream's decoder relies on it to put its own reason
	// for that field in place.
	t.Run("ZeroNamesEveryField", func(t *testing.T) {
		var fields []string
		for _, p := range (scorekeeper.Transaction{}).Problems() {
			fields = append(fields, p.Field)
		}
		require.Equal(t, []string{"id", "userId", "createdAt", "type", "amount"}, fields)
	})
}

func TestSummary_Add(t *testing.T) {
	tx := func(typ scorekeeper.TxType, amount string) scorekeeper.Transaction {
		return validTx(func(t *scorekeeper.Transaction) { t.Type, t.Amount = typ, scorekeeper.MustParseAmount(amount) })
	}
	t.Run("OK", func(t *testing.T) {
		s := scorekeeper.Summary{UserID: "445566"}
		for _, t2 := range []scorekeeper.Transaction{
			tx(scorekeeper.TxEarned, "50"),
			tx(scorekeeper.TxEarned, "1.2"),
			tx(scorekeeper.TxSpent, "12"),
			tx(scorekeeper.TxPayout, "20"),
		} {
			require.NoError(t, s.Add(t2))
		}
		require.Equal(t, scorekeeper.Summary{
			UserID: "445566",
			Earned: scorekeeper.MustParseAmount("51.2"),
			Spent:  scorekeeper.MustParseAmount("12"),
			Payout: scorekeeper.MustParseAmount("20"),
		}, s)
		require.Equal(t, scorekeeper.MustParseAmount("19.2"), s.Balance())
	})
	for _, tt := range []struct {
		name string
		tx   scorekeeper.Transaction
		want string
	}{
		{"ErrOtherUser", validTx(func(t *scorekeeper.Transaction) { t.UserID = "112233" }), `user "112233" added to the summary of user "445566"`},
		{"ErrUnknownType", tx("refund", "1"), `type "refund" is unknown`},
		{"ErrOverflow", validTx(func(t *scorekeeper.Transaction) { t.Amount = 1 }), "overflow"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := scorekeeper.Summary{UserID: "445566", Earned: math.MaxInt64}
			before := s
			require.ErrorContains(t, s.Add(tt.tx), tt.want)
			require.Equal(t, before, s, "unchanged on error")
		})
	}
}

// Ensure Settle moves a payout's amount by its status: paid into PaidOut,
// failed and canceled out of Payout into their own totals, requested
// nowhere.
func TestSummary_Settle(t *testing.T) {
	amt := scorekeeper.MustParseAmount
	for _, tt := range []struct {
		status scorekeeper.PayoutStatus
		want   scorekeeper.Summary
	}{
		{scorekeeper.PayoutRequested, scorekeeper.Summary{Payout: amt("30")}},
		{scorekeeper.PayoutPaid, scorekeeper.Summary{Payout: amt("30"), PaidOut: amt("20")}},
		{scorekeeper.PayoutFailed, scorekeeper.Summary{Payout: amt("10"), FailedPayout: amt("20")}},
		{scorekeeper.PayoutCanceled, scorekeeper.Summary{Payout: amt("10"), CanceledPayout: amt("20")}},
	} {
		t.Run(string(tt.status), func(t *testing.T) {
			s := scorekeeper.Summary{Payout: amt("30")}
			s.Settle(tt.status, amt("20"))
			require.Equal(t, tt.want, s)
		})
	}
}

// Ensure CeilMicro rounds up to the microsecond, in UTC, and leaves a
// whole microsecond as it is.
func TestCeilMicro(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 5_000, time.FixedZone("x", 3600))
	require.Equal(t, at.UTC(), scorekeeper.CeilMicro(at))
	require.Equal(t, at.Add(time.Microsecond).UTC(), scorekeeper.CeilMicro(at.Add(1)))
	require.Equal(t, at.Add(time.Microsecond).UTC(), scorekeeper.CeilMicro(at.Add(999)))
	require.Equal(t, time.UTC, scorekeeper.CeilMicro(at).Location())
}
