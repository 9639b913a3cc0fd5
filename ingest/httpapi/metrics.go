package httpapi

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-soc/vigil/ingest"
)

// Metrics are the listener's metrics; events and skips use the collectors'
// shared ingest metrics so every source counts the same way.
type Metrics struct {
	*ingest.Metrics
	Requests     *prometheus.CounterVec
	RateLimited  *prometheus.CounterVec
	Unauthorized prometheus.Counter
	OtherReports *prometheus.CounterVec
	UnknownKinds prometheus.Counter
	TimeClamped  prometheus.Counter
	Preflights   *prometheus.CounterVec
	// Conns are the connections open; ConnsRefused and ConnsEvicted count
	// those the connection guard closed.
	Conns        prometheus.Gauge
	ConnsRefused *prometheus.CounterVec
	ConnsEvicted *prometheus.CounterVec

	// The children of Requests and Events in use, so that a request does
	// not hash its labels.
	mu       sync.RWMutex
	children map[childKey]prometheus.Counter
}

type childKey struct {
	vec  *prometheus.CounterVec
	a, b string
	code int
}

// requests is Requests.WithLabelValues(endpoint, code).
func (m *Metrics) requests(endpoint string, code int) prometheus.Counter {
	return m.child(childKey{vec: m.Requests, a: endpoint, code: code})
}

// events is Events.WithLabelValues(source, format).
func (m *Metrics) events(source, format string) prometheus.Counter {
	return m.child(childKey{vec: m.Events, a: source, b: format})
}

func (m *Metrics) child(k childKey) prometheus.Counter {
	m.mu.RLock()
	c, ok := m.children[k]
	m.mu.RUnlock()
	if ok {
		return c
	}
	if k.vec == m.Requests {
		c = m.Requests.WithLabelValues(k.a, strconv.Itoa(k.code))
	} else {
		c = k.vec.WithLabelValues(k.a, k.b)
	}
	m.mu.Lock()
	if m.children == nil {
		m.children = map[childKey]prometheus.Counter{}
	}
	m.children[k] = c
	m.mu.Unlock()
	return c
}

// NewMetrics registers the listener metrics on reg.
func NewMetrics(reg prometheus.Registerer, shared *ingest.Metrics) *Metrics {
	m := &Metrics{
		Metrics: shared,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_http_requests_total", Help: "Requests to the public listener, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_http_rate_limited_total", Help: "Requests refused by the per-client rate limit, by endpoint.",
		}, []string{"endpoint"}),
		Unauthorized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_http_events_unauthorized_total", Help: "Requests to /events refused for missing, wrong, stale or replayed credentials.",
		}),
		OtherReports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_reports_other_total", Help: "Reporting API reports of types other than csp-violation, counted and not kept.",
		}, []string{"type"}),
		UnknownKinds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingest_app_unknown_kinds_total", Help: "Application events of a kind Vigil does not know, kept as action unknown.",
		}),
	}
	m.Preflights = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_http_preflights_total", Help: "CORS preflight (OPTIONS) requests answered, by endpoint.",
	}, []string{"endpoint"})
	m.TimeClamped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_ingest_app_time_clamped_total", Help: "Application events whose time was more than 5 minutes ahead of their arrival, stored at their arrival (a skewed or forged clock).",
	})
	m.Conns = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_http_connections", Help: "Connections open on the public listener.",
	})
	m.ConnsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_http_connections_refused_total",
		Help: "Connections to the public listener closed on arrival, by reason: per_client (the client holds max_conns_per_client, every one with a request in progress) or limit (max_conns open, every one with a request in progress).",
	}, []string{"reason"})
	m.ConnsEvicted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_http_connections_evicted_total",
		Help: "Connections without a request in progress closed to make room for a new one, by reason: per_client (its client held max_conns_per_client; the client's own connection waiting longest) or limit (max_conns open); and by state: idle (kept alive after a request) or new (accepted, no request yet).",
	}, []string{"reason", "state"})
	reg.MustRegister(m.Requests, m.RateLimited, m.Unauthorized, m.OtherReports, m.UnknownKinds, m.TimeClamped, m.Preflights,
		m.Conns, m.ConnsRefused, m.ConnsEvicted)
	return m
}
