package logbuf_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper/internal/logbuf"
)

// sink is an output that records every write; while gate is set, writes
// wait for it to be closed, like stderr on a pipe nobody reads.
type sink struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	gate   chan struct{}
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.buf.Write(p)
}

func (s *sink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *sink) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

func line(i int) string { return fmt.Sprintf("line %06d\n", i) }

// Ensure lines from both sides reach the output in the order written, all
// of them when the output keeps up, in far fewer writes than lines.
func TestWriter_OrderAndNothingLost(t *testing.T) {
	out := &sink{}
	w := logbuf.New(out, logbuf.Options{Size: 64 << 10, FlushInterval: 5 * time.Millisecond})
	var want strings.Builder
	for i := range 20_000 {
		l := line(i)
		want.WriteString(l)
		var err error
		if i%1000 == 999 {
			_, err = w.Write([]byte(l))
		} else {
			_, err = w.Lossy().Write([]byte(l))
		}
		require.NoError(t, err)
		if i%500 == 0 {
			// Let the drainer keep up: this test is about order, not
			// overload.
			require.NoError(t, w.Flush())
		}
	}
	require.NoError(t, w.Close())
	require.Zero(t, w.Dropped())
	require.Equal(t, want.String(), out.String())
	require.Less(t, out.Writes(), 1000, "lines are written in batches")
}

// Ensure concurrent writers each see their own lines in order and none
// lost while the buffer has room.
func TestWriter_ConcurrentWriters(t *testing.T) {
	out := &sink{}
	w := logbuf.New(out, logbuf.Options{Size: 4 << 20})
	const writers, lines = 8, 2000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				_, _ = w.Lossy().Write(fmt.Appendf(nil, "g%d %06d\n", g, i))
			}
		}()
	}
	wg.Wait()
	require.NoError(t, w.Close())
	require.Zero(t, w.Dropped())
	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, got, writers*lines)
	for _, l := range got {
		var g, i int
		_, err := fmt.Sscanf(l, "g%d %d", &g, &i)
		require.NoError(t, err)
		require.Equal(t, next[g], i, "writer %d's lines out of order", g)
		next[g]++
	}
}

// Ensure that when the output stalls and the buffer fills, lossy lines are
// dropped and counted, lossless lines wait instead and are all written,
// in order, once the output moves again.
func TestWriter_OverloadDropsOnlyLossyLines(t *testing.T) {
	gate := make(chan struct{})
	out := &sink{gate: gate}
	w := logbuf.New(out, logbuf.Options{Size: 1024, FlushInterval: time.Millisecond})
	// Fill the buffer, and the batch the drainer is stuck writing, and
	// then some: lossy lines past the room are dropped.
	for i := range 500 {
		_, err := w.Lossy().Write([]byte(line(i)))
		require.NoError(t, err)
	}
	require.Positive(t, w.Dropped())

	// Lossless writes block rather than drop.
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 100 {
			_, err := w.Write([]byte(fmt.Sprintf("ERROR %03d\n", i)))
			errs <- err
		}
	}()
	select {
	case <-errs:
		t.Fatal("a lossless write returned while the output was stalled")
	case <-time.After(50 * time.Millisecond):
	}
	dropped := w.Dropped()
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	require.Equal(t, dropped, w.Dropped(), "nothing dropped once the output moves")

	got := out.String()
	last := -1
	for i := range 100 {
		at := strings.Index(got, fmt.Sprintf("ERROR %03d\n", i))
		require.GreaterOrEqual(t, at, 0, "error line %d was lost", i)
		require.Greater(t, at, last, "error line %d out of order", i)
		last = at
	}
	kept := strings.Count(got, "line ")
	require.Equal(t, 500, kept+int(dropped), "every lossy line is either written or counted")
}

// Ensure Close writes out what is buffered (however long the flush
// interval), and that lines written after Close still reach the output.
func TestWriter_CloseFlushes(t *testing.T) {
	out := &sink{}
	w := logbuf.New(out, logbuf.Options{FlushInterval: time.Hour})
	_, err := w.Lossy().Write([]byte("buffered\n"))
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	require.Empty(t, out.String(), "nothing is written before the interval unless asked")
	require.NoError(t, w.Close())
	require.Equal(t, "buffered\n", out.String())

	_, err = w.Lossy().Write([]byte("after close, lossy\n"))
	require.NoError(t, err)
	_, err = w.Write([]byte("after close\n"))
	require.NoError(t, err)
	require.Equal(t, "buffered\nafter close, lossy\nafter close\n", out.String())
	require.NoError(t, w.Close(), "Close twice is harmless")
}

// Ensure a lossless write returns only once its line, and every line
// before it, has reached the output: an error line survives a crash that
// follows it.
func TestWriter_LosslessIsSynchronous(t *testing.T) {
	out := &sink{}
	w := logbuf.New(out, logbuf.Options{FlushInterval: time.Hour})
	defer w.Close()
	_, err := w.Lossy().Write([]byte("info\n"))
	require.NoError(t, err)
	_, err = w.Write([]byte("error\n"))
	require.NoError(t, err)
	require.Equal(t, "info\nerror\n", out.String())
	_, err = w.Lossy().Write([]byte("info 2\n"))
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	require.Equal(t, "info\nerror\ninfo 2\n", out.String())
}

// Ensure the output's error is reported to lossless writers and by Close.
func TestWriter_OutputError(t *testing.T) {
	w := logbuf.New(failing{}, logbuf.Options{})
	_, err := w.Write([]byte("x\n"))
	require.ErrorIs(t, err, io.ErrClosedPipe)
	require.ErrorIs(t, w.Close(), io.ErrClosedPipe)
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// Ensure Split sends records below its level to the lossy handler and the
// rest to the lossless one, with attributes and groups on both.
func TestSplit(t *testing.T) {
	var lossy, lossless bytes.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: dropTime}
	log := slog.New(logbuf.Split(slog.LevelWarn, slog.NewTextHandler(&lossy, opts), slog.NewTextHandler(&lossless, opts)))
	log = log.With("component", "web").WithGroup("g")
	log.Info("access", "status", 200)
	log.Warn("failed", "status", 503)
	log.Error("broken", "status", 500)
	log.Debug("detail")
	require.Equal(t, "level=INFO msg=access component=web g.status=200\nlevel=DEBUG msg=detail component=web\n", lossy.String())
	require.Equal(t, "level=WARN msg=failed component=web g.status=503\nlevel=ERROR msg=broken component=web g.status=500\n", lossless.String())

	quiet := slog.New(logbuf.Split(slog.LevelWarn,
		slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}),
		slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})))
	require.False(t, quiet.Enabled(context.Background(), slog.LevelInfo))
	require.True(t, quiet.Enabled(context.Background(), slog.LevelError))
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// BenchmarkAccessLine is one access line through slog's text handler:
// written straight to a pipe, as before, and through the Writer's lossy
// side to the same pipe.
func BenchmarkAccessLine(b *testing.B) {
	ctx := context.Background()
	logLine := func(log *slog.Logger) {
		log.LogAttrs(ctx, slog.LevelInfo, "http request",
			slog.String("method", "GET"),
			slog.String("path", "/api/users/u000123/summary"),
			slog.Int("status", 200),
			slog.Duration("duration", 182*time.Microsecond),
			slog.Int("bytes", 84),
			slog.String("ip", "127.0.0.1"),
			slog.String("request_id", "0f6c2c1e-7d0e-4d7e-9a53-3b1f1e9b2c4a"),
		)
	}
	// A real pipe, as stderr is under a process supervisor or the e2e
	// harness, with a reader draining it.
	pipe := func(b *testing.B) io.Writer {
		r, w, err := os.Pipe()
		require.NoError(b, err)
		go func() { _, _ = io.Copy(io.Discard, r) }()
		b.Cleanup(func() { w.Close(); r.Close() })
		return w
	}
	b.Run("direct", func(b *testing.B) {
		log := slog.New(slog.NewTextHandler(pipe(b), nil))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				logLine(log)
			}
		})
	})
	b.Run("buffered", func(b *testing.B) {
		w := logbuf.New(pipe(b), logbuf.Options{})
		defer w.Close()
		log := slog.New(logbuf.Split(slog.LevelWarn, slog.NewTextHandler(w.Lossy(), nil), slog.NewTextHandler(w, nil)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				logLine(log)
			}
		})
		b.ReportMetric(float64(w.Dropped()), "dropped")
	})
}
