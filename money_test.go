package scorekeeper_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"scorekeeper"
)

func TestParseAmount(t *testing.T) {
	for _, tc := range []struct {
		in    string
		cents int64
		out   string
	}{
		{"19.2", 1920, "19.2"},
		{"12", 1200, "12"},
		{"0.05", 5, "0.05"},
		{"0.1", 10, "0.1"},
		{"30.00", 3000, "30"},
		{"1.5e1", 1500, "15"},
		{"125E-2", 125, "1.25"},
		{"-3.1", -310, "-3.1"},
		{"92233720368547758.07", 9223372036854775807, "92233720368547758.07"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			a, err := scorekeeper.ParseAmount(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.cents, a.Cents())
			require.Equal(t, tc.out, a.String())
		})
	}
	for _, bad := range []string{"", "1.234", "0.001", "abc", "1/3", "1e400", "92233720368547758.08", "NaN", "Inf", "0x10", "1,5"} {
		t.Run("Err"+bad, func(t *testing.T) {
			_, err := scorekeeper.ParseAmount(bad)
			require.Error(t, err)
		})
	}
}

func TestAmount_JSON(t *testing.T) {
	t.Run("RoundTrip", func(t *testing.T) {
		var v struct {
			A scorekeeper.Amount `json:"a"`
		}
		require.NoError(t, json.Unmarshal([]byte(`{"a":19.2}`), &v))
		require.Equal(t, int64(1920), v.A.Cents())
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.Equal(t, `{"a":19.2}`, string(b))
	})
	for _, bad := range []string{`"19.2"`, `null`, `true`, `1.001`, `[]`} {
		t.Run("Err"+bad, func(t *testing.T) {
			var a scorekeeper.Amount
			require.Error(t, json.Unmarshal([]byte(bad), &a))
		})
	}
	t.Run("RandomRoundTrip", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for range 100000 {
			c := rng.Int64N(1_000_000_000_00) - 500_000_000_00
			a := scorekeeper.AmountFromCents(c)
			var back scorekeeper.Amount
			b, err := json.Marshal(a)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &back))
			require.Equal(t, a, back, "%s", b)
		}
	})
}

// Ensure sums that float64 gets wrong are exact.
func TestAmount_ExactSums(t *testing.T) {
	a := scorekeeper.MustParseAmount("0.1")
	b := scorekeeper.MustParseAmount("0.2")
	sum, err := a.Add(b)
	require.NoError(t, err)
	require.Equal(t, "0.3", sum.String())
	fa, fb := 0.1, 0.2 // variables: Go folds constant 0.1+0.2 exactly
	require.NotEqual(t, "0.3", strconv.FormatFloat(fa+fb, 'f', -1, 64), "float64 would have been wrong here")

	var total scorekeeper.Amount
	cent := scorekeeper.MustParseAmount("0.01")
	var f float64
	for range 1_000_000 {
		total, err = total.Add(cent)
		require.NoError(t, err)
		f += 0.01
	}
	require.Equal(t, "10000", total.String())
	require.NotEqual(t, 10000.0, f, "float64 drifts over a million cents")

	_, err = scorekeeper.AmountFromCents(1 << 62).Add(scorekeeper.AmountFromCents(1 << 62))
	require.Error(t, err, "overflow is an error, not a wrap")
}

// Ensure the amount type is integer cents: no float field can sneak in.
func TestAmount_IsInteger(t *testing.T) {
	require.Equal(t, reflect.Int64, reflect.TypeFor[scorekeeper.Amount]().Kind())
}

func TestValidUserID(t *testing.T) {
	require.True(t, scorekeeper.ValidUserID("445566"))
	require.True(t, scorekeeper.ValidUserID("a_B-9"))
	require.False(t, scorekeeper.ValidUserID(""))
	require.False(t, scorekeeper.ValidUserID("1' OR '1'='1"))
	require.False(t, scorekeeper.ValidUserID(string(make([]byte, 65))))
	require.True(t, scorekeeper.ValidUserID(strings.Repeat("z", 64)))
	require.False(t, scorekeeper.ValidUserID(strings.Repeat("z", 65)))
	require.False(t, scorekeeper.ValidUserID("u1\n"), "a trailing newline is not part of an id")
	require.False(t, scorekeeper.ValidUserID("ü"))
}

// FuzzValidUserID holds the hand-written check to the pattern the design
// states, ^[A-Za-z0-9_-]{1,64}$.
func FuzzValidUserID(f *testing.F) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	for _, s := range []string{"", "445566", "a_B-9", "u1\n", "a b", "ü", "/", ":", "@", "[", "`", "{", strings.Repeat("Z", 64), strings.Repeat("Z", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		require.Equal(t, pattern.MatchString(id), scorekeeper.ValidUserID(id), "%q", id)
	})
}

// Ensure an operator's reason is printable text of at most MaxReasonLen
// characters, required only where asked (the REST API and the payout
// workflow's validators share this rule).
func TestValidReason(t *testing.T) {
	long := strings.Repeat("é", scorekeeper.MaxReasonLen)
	for _, c := range []struct {
		reason   string
		required bool
		ok       bool
	}{
		{"fraud report #4411", true, true},
		{"", false, true},
		{"", true, false},
		{"   ", true, false},
		{long, true, true},
		{long + "x", false, false},
		{"tab\there", false, false},
		{"nbsp\u00a0here", false, false},
		{"bad \xff utf-8", false, false},
	} {
		err := scorekeeper.ValidReason(c.reason, c.required)
		if c.ok {
			require.NoError(t, err, "%q", c.reason)
		} else {
			require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err), "%q", c.reason)
		}
	}
}
