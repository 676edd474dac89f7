package mockapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkTransactionsPage pages through a window of 100,000 items, as a
// sync catching up on history does.
func BenchmarkTransactionsPage(b *testing.B) {
	clock := &fakeClock{t: testStart}
	cfg := testConfig(clock)
	cfg.Transactions = 100_000
	cfg.History = time.Hour
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		req := httptest.NewRequest(http.MethodGet, listURL("", testStart.Add(-time.Hour), testStart, i%100+1, 1000), nil)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkTransactionsNewWindow measures the uncached path: every request
// asks for another one-minute window of live data at 4,500 a minute.
func BenchmarkTransactionsNewWindow(b *testing.B) {
	clock := &fakeClock{t: testStart}
	cfg := testConfig(clock)
	cfg.Transactions = 0
	cfg.LiveRate = 4500
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	clock.Set(testStart.Add(60 * time.Minute))
	s.ValidCount() // generate the live hour outside the timed loop
	for i := 0; b.Loop(); i++ {
		from := testStart.Add(time.Duration(i%59) * time.Minute)
		req := httptest.NewRequest(http.MethodGet, listURL("", from, from.Add(time.Minute), 1, 1000), nil)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkNew measures generating 100,000 historical transactions.
func BenchmarkNew(b *testing.B) {
	cfg := testConfig(&fakeClock{t: testStart})
	cfg.Transactions = 100_000
	for b.Loop() {
		if _, err := New(cfg); err != nil {
			b.Fatal(err)
		}
	}
}
