package upstream

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2023, 2, 1, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	for _, tt := range []struct {
		name, header string
		want         time.Duration
	}{
		{"Seconds", "12", 12 * time.Second},
		{"SecondsWithSpaces", " 7 ", 7 * time.Second},
		{"Missing", "", DefaultRetryAfter},
		{"Garbage", "later", DefaultRetryAfter},
		{"Fraction", "1.5", DefaultRetryAfter},
		{"Negative", "-1", DefaultRetryAfter},
		{"Zero", "0", time.Second},
		{"SecondsCapped", "3600", MaxRetryAfter},
		{"SecondsHuge", "99999999999999999999", DefaultRetryAfter},
		{"Date", date(30 * time.Second), 30 * time.Second},
		{"DateRFC850", now.Add(20 * time.Second).Format("Monday, 02-Jan-06 15:04:05 GMT"), 20 * time.Second},
		{"DatePast", date(-time.Hour), time.Second},
		{"DateCapped", date(time.Hour), MaxRetryAfter},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, parseRetryAfter(tt.header, now))
		})
	}
}

func TestTruncateUTF8(t *testing.T) {
	require.Equal(t, "abc", truncateUTF8("abc", 5))
	require.Equal(t, "ab", truncateUTF8("abc", 2))
	// "é" is two bytes: cutting inside it drops the whole rune.
	require.Equal(t, "a", truncateUTF8("aé", 2))
	require.Equal(t, "aé", truncateUTF8("aé", 3))
}
