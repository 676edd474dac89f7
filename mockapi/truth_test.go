package mockapi

import (
	"testing"
	"time"
)

// Ensure HiddenAt counts exactly the late items not yet visible.
func TestHiddenAt(t *testing.T) {
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
