// Package textlog writes slog's text format faster for flat records: a
// handler whose every line is byte for byte what slog.TextHandler writes
// for the same record, and which formats the common case itself.
//
// The access log writes one line per request, and slog.TextHandler's
// general machinery (a handle state per record, a value walk that resolves
// and type-switches each attribute, a string per duration) was about 30%
// of the summary route's CPU. A record whose attributes are flat strings,
// numbers, booleans, durations and times is formatted here in one pass
// into a pooled buffer, after the flat attributes WithAttrs added (the
// web's "component=web"), formatted once; any other record, and every
// handler derived by WithGroup or by WithAttrs with other kinds, goes to
// slog.TextHandler itself. TestHandler_MatchesSlog holds
// the two equal on random records.
package textlog

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// New returns a handler writing slog's text format to w with opts. Options
// that change the line (ReplaceAttr, AddSource) leave every record to
// slog.TextHandler.
func New(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if opts == nil {
		opts = &slog.HandlerOptions{}
	}
	// Both paths write whole lines through one lock, as slog.TextHandler
	// does through its own: w need not be safe for concurrent use.
	lw := &lockedWriter{w: w}
	std := slog.NewTextHandler(lw, opts)
	if opts.ReplaceAttr != nil || opts.AddSource {
		return std
	}
	level := opts.Level
	if level == nil {
		level = slog.LevelInfo
	}
	return &handler{std: std, w: lw, level: level}
}

type handler struct {
	std   slog.Handler
	w     *lockedWriter
	level slog.Leveler
	// attrs are the attributes WithAttrs added, formatted: " key=value"
	// each, written after the message as slog writes them.
	attrs []byte
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// WithAttrs formats flat attributes once, as slog.TextHandler does; a
// handler with others (or with a group) is slog's.
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	std := h.std.WithAttrs(attrs)
	// Clipped, so appending copies: h's own attrs stay as they are.
	pre := slices.Clip(h.attrs)
	for _, a := range attrs {
		var ok bool
		if pre, ok = appendAttr(pre, a); !ok {
			return std
		}
	}
	return &handler{std: std, w: h.w, level: h.level, attrs: pre}
}

func (h *handler) WithGroup(name string) slog.Handler { return h.std.WithGroup(name) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	bp := bufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooled {
			bufs.Put(bp)
		}
	}()
	b, ok := appendRecord((*bp)[:0], h.attrs, r)
	*bp = b
	if !ok {
		return h.std.Handle(ctx, r)
	}
	_, err := h.w.Write(b)
	return err
}

// maxPooled bounds the buffers kept for reuse, so one huge line does not
// pin its buffer for good.
const maxPooled = 16 << 10

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// appendRecord appends r's line, newline included, with the handler's
// formatted attrs after the message, and reports whether it could: false
// when an attribute is of a kind left to slog.TextHandler.
func appendRecord(b, attrs []byte, r slog.Record) ([]byte, bool) {
	if !r.Time.IsZero() {
		b = append(b, "time="...)
		b = appendTime(b, r.Time.Round(0))
		b = append(b, ' ')
	}
	b = append(b, "level="...)
	b = appendString(b, r.Level.String())
	b = append(b, " msg="...)
	b = appendString(b, r.Message)
	b = append(b, attrs...)
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		b, ok = appendAttr(b, a)
		return ok
	})
	return append(b, '\n'), ok
}

// appendAttr appends " key=value" for the kinds formatted here. An empty
// key (which slog skips or quotes) and the kinds that need resolving,
// marshalling or nesting (Any, LogValuer, Group) are left to slog.
func appendAttr(b []byte, a slog.Attr) ([]byte, bool) {
	if a.Key == "" {
		return b, false
	}
	v := a.Value
	b = append(b, ' ')
	b = appendString(b, a.Key)
	b = append(b, '=')
	switch v.Kind() {
	case slog.KindString:
		return appendString(b, v.String()), true
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10), true
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10), true
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool()), true
	case slog.KindFloat64:
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64), true
	case slog.KindDuration:
		return appendDuration(b, v.Duration()), true
	case slog.KindTime:
		return appendTime(b, v.Time()), true
	}
	return b, false
}

// appendTime appends t in RFC 3339 with exactly three fractional digits
// (milliseconds, truncated), in t's own location, as slog's text format
// has it.
func appendTime(b []byte, t time.Time) []byte {
	// RFC3339Nano trims trailing zeros; adding a tenth of a millisecond
	// after truncating keeps four digits, and the fourth is cut.
	const prefix = len("2006-01-02T15:04:05.000")
	n := len(b)
	b = t.Truncate(time.Millisecond).Add(time.Millisecond/10).AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefix], b[n+prefix+1:]...)
}

// appendString appends s, quoted by strconv.Quote's rules when it would
// not read back as one token (see needsQuoting).
func appendString(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// needsQuoting is slog's text rule: an empty string, or one holding a
// space, '=', '"', an ASCII control character, a Unicode space, a
// character that is not printable, or invalid UTF-8. A backslash alone
// does not need quotes.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// appendDuration appends d as time.Duration's String writes it, without
// the string: "0s", "1.5µs", "12.345ms", "1h2m3.004s".
func appendDuration(b []byte, d time.Duration) []byte {
	if d == 0 {
		return append(b, "0s"...)
	}
	u := uint64(d)
	if d < 0 {
		b = append(b, '-')
		u = -u
	}
	switch {
	case u < uint64(time.Microsecond):
		return append(strconv.AppendUint(b, u, 10), "ns"...)
	case u < uint64(time.Millisecond):
		return append(appendFrac(b, u, 3), "µs"...)
	case u < uint64(time.Second):
		return append(appendFrac(b, u, 6), "ms"...)
	}
	secs := u / uint64(time.Second)
	if h := secs / 3600; h > 0 {
		b = append(strconv.AppendUint(b, h, 10), 'h')
		b = append(strconv.AppendUint(b, secs/60%60, 10), 'm')
	} else if m := secs / 60; m > 0 {
		b = append(strconv.AppendUint(b, m, 10), 'm')
	}
	b = appendFrac(b, secs%60*uint64(time.Second)+u%uint64(time.Second), 9)
	return append(b, 's')
}

// appendFrac appends v / 10^digits with the fraction's trailing zeros,
// and a point with nothing after it, left out.
func appendFrac(b []byte, v uint64, digits int) []byte {
	unit := uint64(1)
	for range digits {
		unit *= 10
	}
	b = strconv.AppendUint(b, v/unit, 10)
	f := v % unit
	if f == 0 {
		return b
	}
	for f%10 == 0 {
		f /= 10
		digits--
	}
	b = append(b, '.')
	n := 1
	for x := f; x >= 10; x /= 10 {
		n++
	}
	for ; n < digits; n++ {
		b = append(b, '0')
	}
	return strconv.AppendUint(b, f, 10)
}
