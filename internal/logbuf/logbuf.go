// Package logbuf makes logging cheap for the request path: a Writer that
// buffers log lines in memory and writes them in batches from one
// goroutine, and a slog handler that sends each record to the writer's
// lossy or lossless side by level.
//
// One write(2) per access line costs the REST API a fifth of its
// throughput (the syscall, and on a pipe the reader's wake-up too);
// batching turns thousands of them into one every FlushInterval. What may
// be lost is decided by the caller and kept narrow: only lines written
// through Lossy, and only while the buffer is full (the output cannot keep
// up). Lines written through the Writer itself are never dropped: they wait
// for room, and their Write returns once they have reached the output, so
// an error line is not lost if the process dies right after it. Both sides
// share one buffer, so lines reach the output in the order written.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	// DefaultSize bounds the bytes waiting to be written (about 7,000
	// access lines): enough to ride out a slow reader for a moment, small
	// next to the process.
	DefaultSize = 1 << 20
	// DefaultFlushInterval is how long a line may wait in the buffer.
	DefaultFlushInterval = 100 * time.Millisecond
)

// Options tunes a Writer; zero values take the defaults.
type Options struct {
	// Size bounds the bytes buffered and not yet handed to the output.
	// While a batch is being written, another of up to Size fills, so a
	// Writer holds at most twice Size.
	Size int
	// FlushInterval is how often buffered lines are written when the
	// buffer is not filling fast enough to be written sooner.
	FlushInterval time.Duration
}

// Writer is an io.Writer that buffers what it is given and writes it to
// the output from its own goroutine, in order. Its Write never drops: it
// waits for room and returns once its bytes have reached the output.
// Lossy returns the side that drops instead of waiting. Close writes out
// everything buffered; writes after Close go straight to the output.
type Writer struct {
	out      io.Writer
	size     int
	interval time.Duration

	mu sync.Mutex
	// moved is signalled (under mu) whenever the drainer has handed a
	// batch to the output: room was freed and written advanced.
	moved *sync.Cond
	// buf holds the bytes accepted and not yet taken by the drainer.
	buf []byte
	// accepted and written count bytes since the start: a lossless write
	// is out once written reaches the position its bytes ended at.
	accepted, written uint64
	// closed is set by Close; stopped by the drainer when it has written
	// everything and returned. From then on writes go straight to the
	// output (under mu, so still one at a time and in order).
	closed, stopped bool
	// err is the first error the output returned.
	err error

	// kick wakes the drainer before its next tick (buffer half full, a
	// lossless write waiting, Close).
	kick    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64
}

// New returns a Writer over out and starts its goroutine; Close stops it.
// out is only ever written from one goroutine at a time.
func New(out io.Writer, opts Options) *Writer {
	if opts.Size <= 0 {
		opts.Size = DefaultSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	w := &Writer{
		out:      out,
		size:     opts.Size,
		interval: opts.FlushInterval,
		buf:      make([]byte, 0, opts.Size),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	w.moved = sync.NewCond(&w.mu)
	go w.drain()
	return w
}

// Write buffers p and returns once p has been written to the output. It
// never drops p: when the buffer is full it waits for room. p is copied;
// the caller may reuse it.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// A p larger than the whole buffer is taken once the buffer is empty,
	// rather than never.
	for !w.stopped && len(w.buf) > 0 && len(w.buf)+len(p) > w.size {
		w.wake()
		w.moved.Wait()
	}
	if w.stopped {
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	w.accepted += uint64(len(p))
	end := w.accepted
	w.wake()
	for w.written < end {
		w.moved.Wait()
	}
	return len(p), w.err
}

// Lossy returns the writer for lines that may be dropped: it buffers p
// and returns at once, or, when the buffer is full, drops p and counts it
// (see Dropped). Its lines keep their order with the Writer's own.
func (w *Writer) Lossy() io.Writer { return lossy{w} }

type lossy struct{ w *Writer }

func (l lossy) Write(p []byte) (int, error) {
	w := l.w
	w.mu.Lock()
	if w.stopped {
		defer w.mu.Unlock()
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > w.size {
		w.mu.Unlock()
		w.dropped.Add(1)
		w.wake()
		// Dropping is the contract, not a failure of this write.
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	w.accepted += uint64(len(p))
	// Start writing at half full instead of on the next tick, so a burst
	// does not fill the buffer while the drainer sleeps.
	if len(w.buf) >= w.size/2 {
		w.wake()
	}
	w.mu.Unlock()
	return len(p), nil
}

// Dropped returns how many lossy writes were dropped because the buffer
// was full.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Flush returns once everything written before it has reached the output.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	end := w.accepted
	w.wake()
	for w.written < end {
		w.moved.Wait()
	}
	return w.err
}

// Close writes out everything buffered, stops the goroutine and returns
// the first error the output gave. Later writes go straight to the
// output, so a line logged during shutdown is not lost either.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return w.err
	}
	w.closed = true
	w.mu.Unlock()
	w.wake()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// wake asks the drainer to run now; it never blocks.
func (w *Writer) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// drain is the one goroutine that writes to the output: each round it
// takes the whole buffer, leaving writers an empty one (two buffers swap,
// so steady logging allocates nothing), and writes it in one call.
func (w *Writer) drain() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	spare := make([]byte, 0, w.size)
	for {
		select {
		case <-w.kick:
		case <-t.C:
		}
		w.mu.Lock()
		for len(w.buf) > 0 {
			batch, end := w.buf, w.accepted
			w.buf = spare[:0]
			w.mu.Unlock()
			_, err := w.out.Write(batch)
			w.mu.Lock()
			if err != nil && w.err == nil {
				w.err = err
			}
			w.written = end
			w.moved.Broadcast()
			// A batch grown past the usual size (one huge lossless line)
			// is not kept as a spare.
			if cap(batch) <= 2*w.size {
				spare = batch[:0]
			} else {
				spare = make([]byte, 0, w.size)
			}
		}
		// The buffer is empty and mu held: if closed, nothing more can be
		// buffered after this, since writers see stopped first.
		if w.closed {
			w.stopped = true
			w.moved.Broadcast()
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
}

// Split returns a slog.Handler that passes records below keep to lossy
// and the rest to lossless: e.g. info access lines to a handler writing
// to Writer.Lossy, warnings and errors to one writing to the Writer, so
// no error line is ever dropped. Both handlers should format the same
// way; attributes and groups added with WithAttrs and WithGroup go to
// both.
func Split(keep slog.Level, lossy, lossless slog.Handler) slog.Handler {
	return &split{keep: keep, lossy: lossy, lossless: lossless}
}

type split struct {
	keep            slog.Level
	lossy, lossless slog.Handler
}

func (s *split) pick(l slog.Level) slog.Handler {
	if l >= s.keep {
		return s.lossless
	}
	return s.lossy
}

func (s *split) Enabled(ctx context.Context, l slog.Level) bool {
	return s.pick(l).Enabled(ctx, l)
}

func (s *split) Handle(ctx context.Context, r slog.Record) error {
	return s.pick(r.Level).Handle(ctx, r)
}

func (s *split) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &split{keep: s.keep, lossy: s.lossy.WithAttrs(attrs), lossless: s.lossless.WithAttrs(attrs)}
}

func (s *split) WithGroup(name string) slog.Handler {
	return &split{keep: s.keep, lossy: s.lossy.WithGroup(name), lossless: s.lossless.WithGroup(name)}
}
