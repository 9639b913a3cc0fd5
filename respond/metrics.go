package respond

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Audit results, the values of event.Audit.Result and of the result label
// of vigil_respond_actions_total.
const (
	ResultApplied     = "applied"             // the action changed Redis
	ResultUnchanged   = "unchanged"           // a repeat of an action already applied
	ResultAllowlisted = "skipped-allowlisted" // the key is allow-listed: nothing done
	ResultDryRun      = "dry-run"             // dry-run mode: nothing done
	ResultFailed      = "failed"              // the action failed; see Audit.Error
	ResultBreakerOpen = "breaker-open"        // an automatic ban stopped by the circuit breaker
	ResultRefused     = "refused"             // a manual action that failed validation
)

// results are every audit result, for pre-creating metric series.
var results = []string{
	ResultApplied, ResultUnchanged, ResultAllowlisted, ResultDryRun,
	ResultFailed, ResultBreakerOpen, ResultRefused,
}

// Metrics are the responder's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	actions      *prometheus.CounterVec
	bansActive   prometheus.Gauge
	breakerOpen  *prometheus.GaugeVec
	breakerTrips *prometheus.CounterVec
}

// NewMetrics creates the responder's metrics and registers them with reg
// (not registered if reg is nil):
//
//   - vigil_respond_actions_total{action,result}: actions handled,
//     automatic and manual, by kind (ban, unban, jti_deny, revoke_user,
//     revoke_all, lockdown, lockdown_off; "unknown" for a kind the
//     responder does not know) and result (applied, unchanged,
//     skipped-allowlisted, dry-run, failed, breaker-open, refused);
//   - vigil_respond_bans_active: active bans in the index, as of the last
//     Responder.RefreshActive;
//   - vigil_respond_breaker_open{scope}: 1 while the circuit breaker of
//     scope ("overall", "rule:<id>") is open, else 0;
//   - vigil_respond_breaker_trips_total{scope}: how many times it opened.
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
		breakerOpen: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_respond_breaker_open",
			Help: "1 while the circuit breaker of the scope stops automatic bans, else 0.",
		}, []string{"scope"}),
		breakerTrips: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_respond_breaker_trips_total",
			Help: "Times the circuit breaker of the scope opened.",
		}, []string{"scope"}),
	}
	// Start every known series at zero so rate() and alerts see them
	// before the first action.
	for _, k := range metricKinds {
		for _, r := range results {
			m.actions.WithLabelValues(k, r)
		}
	}
	m.breakerOpen.WithLabelValues(BreakerScopeOverall)
	m.breakerTrips.WithLabelValues(BreakerScopeOverall)
	return m
}

// action counts one handled action.
func (m *Metrics) action(kind, result string) {
	if m == nil {
		return
	}
	m.actions.WithLabelValues(kind, result).Inc()
}

// breakerTrip records that the breaker of scope opened.
func (m *Metrics) breakerTrip(scope string) {
	if m == nil {
		return
	}
	m.breakerOpen.WithLabelValues(scope).Set(1)
	m.breakerTrips.WithLabelValues(scope).Inc()
}

// breakerOpened records that the breaker of scope is open (restored from
// Redis: not a new trip).
func (m *Metrics) breakerOpened(scope string) {
	if m == nil {
		return
	}
	m.breakerOpen.WithLabelValues(scope).Set(1)
}

// breakerClosed records that the breaker of scope closed.
func (m *Metrics) breakerClosed(scope string) {
	if m == nil {
		return
	}
	m.breakerOpen.WithLabelValues(scope).Set(0)
}

// setBansActive records the number of active bans.
func (m *Metrics) setBansActive(n int64) {
	if m == nil {
		return
	}
	m.bansActive.Set(float64(n))
}
