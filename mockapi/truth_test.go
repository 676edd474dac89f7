package mockapi

import (
	"testing"
	"time"
)

// Ensure HiddenAt counts exactly the late items not yet visible.
func TestHiddenAt(t *testing.T) {
	s, start := lateWorld(t)
	hidden := s.HiddenAt(start)
	if hidden == 0 {
		t.Fatal("half the items are late by a minute: some of the last minute's must be hidden")
	}
	if got := len(s.TruthAll()); got == 0 {
		t.Fatal("no truth")
	}
	if s.HiddenAt(start.Add(-10*time.Minute-time.Second)) != 0 {
		t.Fatal("nothing exists before the history")
	}
}

// Ensure Owed asks for on-time items by the watermark and late ones by
// late coverage, and nothing else.
func TestOwed(t *testing.T) {
	s, start := lateWorld(t)
	all := len(s.Transactions()) + s.HiddenAt(start)
	if got := len(s.Owed(start, start)); got != all {
		t.Fatalf("through now on both: %d owed, want every valid item, %d", got, all)
	}
	mid := start.Add(-5 * time.Minute)
	onTimeOnly := s.Owed(mid, start.Add(-11*time.Minute))
	lateOnly := s.Owed(start.Add(-11*time.Minute), mid)
	both := s.Owed(mid, mid)
	if len(onTimeOnly) == 0 || len(lateOnly) == 0 || len(onTimeOnly)+len(lateOnly) != len(both) {
		t.Fatalf("on time %d + late %d, want both %d, neither empty", len(onTimeOnly), len(lateOnly), len(both))
	}
	if len(both) >= all {
		t.Fatalf("%d owed through 5 minutes ago, want fewer than all %d", len(both), all)
	}
}

// lateWorld is a mock of 2000 items over 10 minutes ending at its start,
// half of them late by a minute, its clock stopped at the start.
func lateWorld(t *testing.T) (*Server, time.Time) {
	t.Helper()
	start := time.Date(2023, 3, 16, 12, 0, 0, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.Users, cfg.Transactions, cfg.History, cfg.LiveRate = 20, 2000, 10*time.Minute, 0
	cfg.LateRate, cfg.LateDelay = 0.5, time.Minute
	cfg.Start = start
	cfg.Now = func() time.Time { return start }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, start
}
