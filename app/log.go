package app

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"scorekeeper/config"
	"scorekeeper/internal/logbuf"
	"scorekeeper/internal/textlog"
)

// NewLogger returns the process's logger, writing to w through a
// logbuf.Writer, and the function that flushes and closes it (the caller
// defers it, so buffered lines are written out on every way out).
// Records below warn (the info access lines) are buffered and written in
// batches, and dropped, counted, only when w cannot keep up; warnings and
// errors (5xx access lines among them) are never dropped and are on w when
// their log call returns. Dropped lines are reported every dropReportEvery
// while they occur, and at close.
func NewLogger(cfg config.Config, w io.Writer) (*slog.Logger, func()) {
	buf := logbuf.New(w, logbuf.Options{})
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	handler := func(out io.Writer) slog.Handler {
		if cfg.LogFormat == "json" {
			return slog.NewJSONHandler(out, opts)
		}
		return textlog.New(out, opts)
	}
	log := slog.New(logbuf.Split(slog.LevelWarn, handler(buf.Lossy()), handler(buf)))

	stop, stopped := make(chan struct{}), make(chan struct{})
	var reported uint64
	report := func() {
		if n := buf.Dropped(); n > reported {
			log.Warn("log lines dropped: the log output could not keep up", "dropped", n-reported, "dropped_total", n)
			reported = n
		}
	}
	go func() {
		defer close(stopped)
		t := time.NewTicker(dropReportEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				report()
			}
		}
	}()
	return log, func() {
		close(stop)
		<-stopped
		report()
		if err := buf.Close(); err != nil {
			fmt.Fprintln(w, "scorekeeper: write logs:", err)
		}
	}
}

// dropReportEvery is how often dropped log lines are reported.
const dropReportEvery = 10 * time.Second
