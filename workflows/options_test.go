package workflows

import (
	"testing"
	"time"
)

// Ensure FetchPage's retries back off to at most half a sync interval, so
// a 5xx after a storm of 429s (which count as attempts) is retried within
// the freshness promise, never sooner than a second nor later than a minute.
func TestFetchPageRetryCap(t *testing.T) {
	for interval, want := range map[time.Duration]time.Duration{
		time.Second:      time.Second,
		5 * time.Second:  2500 * time.Millisecond,
		time.Minute:      30 * time.Second,
		10 * time.Minute: time.Minute,
	} {
		got := fetchPageActivityOptions(interval).RetryPolicy.MaximumInterval
		if got != want {
			t.Errorf("interval %s: maximum retry interval %s, want %s", interval, got, want)
		}
	}
}
