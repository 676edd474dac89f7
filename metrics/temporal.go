package metrics

import (
	"log/slog"
	"time"

	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// TemporalHandler is the Temporal SDK's metrics handler reporting into this
// registry, so the SDK's own temporal_* series (workflow and activity task
// latencies, failures, poller counts, non-determinism errors) are served
// on the same /metrics as ours. close flushes and stops it.
func (m *Metrics) TemporalHandler(log *slog.Logger) (h client.MetricsHandler, close func()) {
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:       m.reg,
		DefaultTimerType: tallyprom.HistogramTimerType,
		OnRegisterError: func(err error) {
			if log != nil {
				log.Warn("metrics: could not register a Temporal SDK series", "error", err)
			}
		},
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	return sdktally.NewMetricsHandler(scope), func() { _ = closer.Close() }
}
