package respond

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vigil-soc/vigil/event"
)

// Audit results, the values of event.Audit.Result and of the result label
// of vigil_respond_actions_total.
const (
	ResultApplied     = "applied"             // the action changed Redis
	ResultUnchanged   = "unchanged"           // a repeat of an action already applied
	ResultAllowlisted = "skipped-allowlisted" // the key is allow-listed: nothing done
	ResultDryRun      = "dry-run"             // dry-run mode: nothing done
	ResultFailed      = "failed"              // the action failed; see Audit.Error
)

// Metrics are the responder's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	actions    *prometheus.CounterVec
	bansActive prometheus.Gauge
}

// NewMetrics creates the responder's metrics and registers them with reg
// (not registered if reg is nil):
//
//   - vigil_respond_actions_total{action,result}: actions handled, by kind
//     ("unknown" for a kind the responder does not know) and result
//     (applied, unchanged, skipped-allowlisted, dry-run, failed);
//   - vigil_respond_bans_active: active bans in the index, as of the last
//     Responder.RefreshActive.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		actions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_respond_actions_total",
			Help: "Actions the responder handled, by action kind and result.",
		}, []string{"action", "result"}),
		bansActive: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_respond_bans_active",
			Help: "Active IP bans in the Redis ban index, as of the last refresh.",
		}),
	}
	// Start every known series at zero so rate() and alerts see them
	// before the first action.
	for _, r := range []string{ResultApplied, ResultUnchanged, ResultAllowlisted, ResultDryRun, ResultFailed} {
		m.actions.WithLabelValues(event.ActionBan, r)
	}
	return m
}

// action counts one handled action.
func (m *Metrics) action(kind, result string) {
	if m == nil {
		return
	}
	m.actions.WithLabelValues(kind, result).Inc()
}

// setBansActive records the number of active bans.
func (m *Metrics) setBansActive(n int64) {
	if m == nil {
		return
	}
	m.bansActive.Set(float64(n))
}
