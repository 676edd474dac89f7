package payout

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2023, 2, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name, header string
		want         time.Duration
	}{
		{"Seconds", "5", 5 * time.Second},
		{"Missing", "", 0},
		{"Garbage", "later", 0},
		{"Negative", "-1", 0},
		{"Capped", "3600", MaxRetryAfter},
		{"Date", now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"DatePast", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"DateCapped", now.Add(time.Hour).Format(http.TimeFormat), MaxRetryAfter},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, parseRetryAfter(tt.header, now))
		})
	}
}
