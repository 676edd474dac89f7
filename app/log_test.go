package app_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"scorekeeper/app"
	"scorekeeper/config"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Ensure the process's logger buffers info lines, writes a warning (and
// everything before it) by the time the call returns, keeps the order,
// and writes everything out when closed.
func TestNewLogger(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.LogFormat = format
			var out lockedBuffer
			log, closeLog := app.NewLogger(cfg, &out)
			log = log.With("component", "web")
			log.Info("http request", "status", 200)
			log.Warn("http request", "status", 503)
			got := out.String()
			require.Contains(t, got, "503", "a warning is out when the call returns")
			require.Less(t, strings.Index(got, "200"), strings.Index(got, "503"), "in order")
			require.Equal(t, 2, strings.Count(got, "component"))

			log.Info("buffered")
			closeLog()
			require.Contains(t, out.String(), "buffered", "closing flushes")
			require.NotContains(t, out.String(), "dropped", "nothing was dropped")
		})
	}

	t.Run("LevelOff", func(t *testing.T) {
		cfg := config.Defaults()
		cfg.LogLevel = slog.LevelWarn
		var out lockedBuffer
		log, closeLog := app.NewLogger(cfg, &out)
		log.Info("http request", "status", 200)
		closeLog()
		require.Empty(t, out.String())
	})
}
