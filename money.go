package scorekeeper

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Amount is an exact amount of SCR (1 SCR = 1 EUR) held as integer cents.
//
// It never passes through float64: JSON numbers are parsed from their text,
// and rendered as plain decimal numbers with no trailing zeros ("19.2",
// "12", "0.05"), which is the wire format of both the upstream API and ours.
type Amount int64

// Cents returns a as a whole number of cents.
func (a Amount) Cents() int64 { return int64(a) }

// AmountFromCents returns the Amount of c cents.
func AmountFromCents(c int64) Amount { return Amount(c) }

var hundred = big.NewInt(100)

// ParseAmount parses a decimal number such as "19.2", "12", "0.05" or
// "1.5e1" exactly. More than two decimal places, a value that does not fit
// in int64 cents, or anything that is not a number is an error.
func ParseAmount(s string) (Amount, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("amount is empty")
	}
	// big.Rat accepts fractions ("1/3") and other forms JSON does not; only
	// plain decimal literals (optionally with an exponent) are amounts.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return 0, fmt.Errorf("amount %q is not a decimal number", s)
		}
	}
	if len(s) > 64 {
		return 0, fmt.Errorf("amount %q is too long", s[:16]+"…")
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("amount %q is not a decimal number", s)
	}
	r.Mul(r, new(big.Rat).SetInt(hundred))
	if !r.IsInt() {
		return 0, fmt.Errorf("amount %q has more than 2 decimal places", s)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("amount %q is out of range", s)
	}
	return Amount(n.Int64()), nil
}

// MustParseAmount is ParseAmount for constants in code and tests; it panics
// on an invalid literal.
func MustParseAmount(s string) Amount {
	a, err := ParseAmount(s)
	if err != nil {
		panic(err)
	}
	return a
}

// String renders a as a plain decimal number: "19.2", "12", "0.05", "-3.1".
func (a Amount) String() string {
	c := int64(a)
	neg := c < 0
	var u uint64
	if neg {
		u = uint64(-(c + 1)) + 1 // safe for math.MinInt64
	} else {
		u = uint64(c)
	}
	whole, frac := u/100, u%100
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	b.WriteString(strconv.FormatUint(whole, 10))
	switch {
	case frac == 0:
	case frac%10 == 0:
		b.WriteByte('.')
		b.WriteByte(byte('0' + frac/10))
	default:
		b.WriteByte('.')
		b.WriteByte(byte('0' + frac/10))
		b.WriteByte(byte('0' + frac%10))
	}
	return b.String()
}

// MarshalJSON renders a as a JSON number, e.g. 19.2.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalJSON parses a JSON number exactly. Strings, null, booleans and
// numbers with more than two decimals are rejected.
func (a *Amount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] == '"' || bytes.Equal(b, []byte("null")) || bytes.Equal(b, []byte("true")) || bytes.Equal(b, []byte("false")) {
		return fmt.Errorf("amount must be a JSON number, got %.20s", b)
	}
	v, err := ParseAmount(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Add returns a+b, reporting overflow as an error rather than wrapping.
func (a Amount) Add(b Amount) (Amount, error) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, fmt.Errorf("amount overflow: %s + %s", a, b)
	}
	return a + b, nil
}
