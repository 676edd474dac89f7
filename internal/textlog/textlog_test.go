package textlog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestHandler_MatchesSlog holds the handler's lines equal, byte for byte,
// to slog.TextHandler's for random records: strings over the characters
// the quoting rule turns on, every kind of value (those formatted here
// and those left to slog), times in several zones, levels between the
// named ones, and handlers derived by WithAttrs and WithGroup.
func TestHandler_MatchesSlog(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	var got, want bytes.Buffer
	ours := New(&got, &slog.HandlerOptions{Level: slog.LevelDebug})
	theirs := slog.NewTextHandler(&want, &slog.HandlerOptions{Level: slog.LevelDebug})
	fast := 0
	for i := range 20000 {
		got.Reset()
		want.Reset()
		r := slog.NewRecord(randTime(rng), slog.Level(rng.IntN(20)-6), randString(rng), 0)
		simple := true
		for range rng.IntN(8) {
			a, ok := randAttr(rng)
			simple = simple && ok
			r.AddAttrs(a)
		}
		if _, ok := appendRecord(nil, nil, r); ok {
			fast++
		}
		o, s := slog.Handler(ours), slog.Handler(theirs)
		// Derived handlers: attributes added once or twice (flat ones
		// keep the fast path), and groups.
		for range rng.IntN(3) {
			if rng.IntN(2) == 0 {
				continue
			}
			var as []slog.Attr
			flat := true
			for range rng.IntN(3) {
				a, ok := randAttr(rng)
				flat = flat && ok
				as = append(as, a)
			}
			_, wasFast := o.(*handler)
			o, s = o.WithAttrs(as), s.WithAttrs(as)
			if _, isFast := o.(*handler); wasFast && flat {
				require.True(t, isFast, "flat attrs keep the fast path")
			}
		}
		if rng.IntN(10) == 0 {
			g := randString(rng)
			o, s = o.WithGroup(g), s.WithGroup(g)
		}
		require.NoError(t, o.Handle(context.Background(), r))
		require.NoError(t, s.Handle(context.Background(), r))
		require.Equal(t, want.String(), got.String(), "record %d", i)
		if simple {
			_, ok := appendRecord(nil, nil, r)
			require.True(t, ok, "record %d has only kinds formatted here", i)
		}
	}
	// Most records take the fast path, so the equality above is mostly
	// about this package's formatting, not slog's agreeing with itself.
	require.Greater(t, fast, 20000/10)
}

func TestHandler_Enabled(t *testing.T) {
	var lv slog.LevelVar
	lv.Set(slog.LevelWarn)
	h := New(io.Discard, &slog.HandlerOptions{Level: &lv})
	require.False(t, h.Enabled(context.Background(), slog.LevelInfo))
	require.True(t, h.Enabled(context.Background(), slog.LevelWarn))
	lv.Set(slog.LevelDebug)
	require.True(t, h.Enabled(context.Background(), slog.LevelDebug))
	require.True(t, New(io.Discard, nil).Enabled(context.Background(), slog.LevelInfo))
	require.False(t, New(io.Discard, nil).Enabled(context.Background(), slog.LevelDebug))
}

// TestHandler_OptionsThatChangeTheLine: ReplaceAttr and AddSource are
// slog's alone.
func TestHandler_OptionsThatChangeTheLine(t *testing.T) {
	var got bytes.Buffer
	h := New(&got, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	require.NoError(t, slog.New(h).Handler().Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelInfo, "hi", 0)))
	require.Equal(t, "level=INFO msg=hi\n", got.String())
}

// TestHandler_WithAttrsLeavesTheParentAlone: a derived handler's attrs
// are its own, however many are derived from one parent.
func TestHandler_WithAttrsLeavesTheParentAlone(t *testing.T) {
	var got bytes.Buffer
	parent := New(&got, nil).WithAttrs([]slog.Attr{slog.String("component", "web")})
	a := parent.WithAttrs([]slog.Attr{slog.Int("a", 1)})
	b := parent.WithAttrs([]slog.Attr{slog.Int("b", 2)})
	for _, h := range []slog.Handler{a, b, parent} {
		r := slog.NewRecord(time.Time{}, slog.LevelInfo, "m", 0)
		r.AddAttrs(slog.Bool("x", true))
		require.NoError(t, h.Handle(context.Background(), r))
	}
	require.Equal(t, "level=INFO msg=m component=web a=1 x=true\nlevel=INFO msg=m component=web b=2 x=true\nlevel=INFO msg=m component=web x=true\n", got.String())
}

// TestHandler_OneLineAtATime: lines from many goroutines, through the fast
// path and slog's, never interleave on a writer that is not safe for
// concurrent use.
func TestHandler_OneLineAtATime(t *testing.T) {
	var out bytes.Buffer
	h := New(&out, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				log := slog.New(h)
				if i%2 == 0 {
					log = log.With("derived", true)
				}
				log.Info("line", "g", g, "payload", strings.Repeat("x", 200))
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 8*500)
	for _, l := range lines {
		require.Contains(t, l, " msg=line ")
		require.True(t, strings.HasSuffix(l, strings.Repeat("x", 200)), l)
	}
}

func TestHandler_WriteErrorIsReturned(t *testing.T) {
	h := New(failing{}, nil)
	err := h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0))
	require.ErrorIs(t, err, errWrite)
}

var errWrite = errors.New("disk full")

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errWrite }

func TestAppendDuration(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	edges := []time.Duration{0, 1, -1, 999, 1000, 1001, time.Microsecond - 1, time.Millisecond, time.Millisecond + 1,
		time.Second - 1, time.Second, time.Minute, time.Hour, time.Hour + 500*time.Millisecond, 61 * time.Second,
		100 * time.Millisecond, 1050 * time.Microsecond, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	for _, d := range edges {
		require.Equal(t, d.String(), string(appendDuration(nil, d)), "%d", int64(d))
	}
	for range 200000 {
		// Magnitudes spread over every unit, and round values too.
		d := time.Duration(rng.Int64N(int64(1) << rng.IntN(63)))
		if rng.IntN(4) == 0 {
			d = d.Truncate([]time.Duration{time.Microsecond, time.Millisecond, time.Second, time.Minute}[rng.IntN(4)])
		}
		if rng.IntN(2) == 0 {
			d = -d
		}
		require.Equal(t, d.String(), string(appendDuration(nil, d)), "%d", int64(d))
	}
}

func TestNeedsQuoting(t *testing.T) {
	for s, want := range map[string]bool{
		"": true, "a": false, "a b": true, "a=b": true, `a"b`: true, `a\b`: false, "a\tb": true, "a\x7fb": false,
		"é": false, "a\u00a0b": true, "a\u200bb": true, "\xff": true, "\ufffd": true, "/api/users/u1/summary": false,
	} {
		require.Equal(t, want, needsQuoting(s), "%q", s)
	}
}

var zones = []*time.Location{time.UTC, time.Local, time.FixedZone("", -(3*3600 + 30*60)), time.FixedZone("X", 5*3600+45*60)}

func randTime(rng *rand.Rand) time.Time {
	switch rng.IntN(8) {
	case 0:
		return time.Time{}
	case 1:
		return time.Now()
	}
	// Years 1 to 9999, with any fraction, in any of the zones.
	t := time.Unix(rng.Int64N(253402300799+62135596800)-62135596800, rng.Int64N(1e9))
	if rng.IntN(3) == 0 {
		t = t.Truncate([]time.Duration{time.Millisecond, time.Second}[rng.IntN(2)])
	}
	return t.In(zones[rng.IntN(len(zones))])
}

var alphabet = []string{"a", "Z", "0", "/", "-", "_", ".", " ", "=", `"`, `\`, "\t", "\n", "\x00", "\x7f", "é", "µ", "\u00a0", "\u2028", "\u200b", "\ufffd", "\xff", "\xc3", "日", "🙂"}

func randString(rng *rand.Rand) string {
	if rng.IntN(3) == 0 {
		return []string{"http request", "/api/users/u0001/summary", "GET", "127.0.0.1", "abc-123", ""}[rng.IntN(6)]
	}
	var sb strings.Builder
	for range rng.IntN(12) {
		if rng.IntN(2) == 0 {
			sb.WriteString("a")
			continue
		}
		sb.WriteString(alphabet[rng.IntN(len(alphabet))])
	}
	return sb.String()
}

// randAttr returns an attribute and whether it is of a kind formatted here.
func randAttr(rng *rand.Rand) (slog.Attr, bool) {
	key := randString(rng)
	ok := key != ""
	switch rng.IntN(12) {
	case 0:
		return slog.Int64(key, rng.Int64()-rng.Int64()), ok
	case 1:
		return slog.Uint64(key, rng.Uint64()), ok
	case 2:
		return slog.Bool(key, rng.IntN(2) == 0), ok
	case 3:
		f := []float64{0, math.Copysign(0, -1), 1.5, math.NaN(), math.Inf(1), math.Inf(-1), 1e300, 5e-324, rng.NormFloat64() * 1e6}[rng.IntN(9)]
		return slog.Float64(key, f), ok
	case 4:
		return slog.Duration(key, time.Duration(rng.Int64N(int64(1)<<rng.IntN(63)))), ok
	case 5:
		return slog.Time(key, randTime(rng)), ok
	case 6:
		return slog.Any(key, errors.New(randString(rng))), false
	case 7:
		return slog.Group(key, slog.String(randString(rng), randString(rng))), false
	case 8:
		return slog.Attr{}, false
	case 9:
		return slog.Any(key, []byte(randString(rng))), false
	default:
		return slog.String(key, randString(rng)), ok
	}
}

// BenchmarkHandle is one access line (the attributes web's access log
// writes) through this handler and through slog.TextHandler, to a
// discarding writer.
func BenchmarkHandle(b *testing.B) {
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "http request", 0)
	r.AddAttrs(slog.String("method", "GET"), slog.String("path", "/api/users/u0042/summary"), slog.Int("status", 200),
		slog.Duration("duration", 41234*time.Nanosecond), slog.Int("bytes", 96), slog.String("ip", "127.0.0.1"),
		slog.String("request_id", "0f8c2b7e-5d1a-4c1e-9a3b-2f6d8e7c1a90"))
	for _, h := range []struct {
		name string
		h    slog.Handler
	}{{"textlog", New(io.Discard, nil)}, {"slog", slog.NewTextHandler(io.Discard, nil)}} {
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = h.h.Handle(context.Background(), r)
				}
			})
		})
	}
}
