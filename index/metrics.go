package index

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Results, the values of the result label of vigil_index_documents_total.
const (
	ResultIndexed    = "indexed"    // Elasticsearch accepted the document (or already had it)
	ResultRetried    = "retried"    // a retryable refusal: the document is sent again
	ResultDeadLetter = "deadletter" // refused for good and stored in VIGIL_DEADLETTER
)

// metrics are the indexer's Prometheus metrics.
type metrics struct {
	docs   *prometheus.CounterVec
	bulk   prometheus.Histogram
	errors *prometheus.CounterVec
}

// newMetrics creates the indexer's metrics and registers them with reg (not
// registered if reg is nil; an indexer created again on the same registry
// shares the first one's):
//
//   - vigil_index_documents_total{kind,result}: documents by kind (access,
//     csp, app, alerts, audit) and result (indexed, retried, deadletter).
//     Attempts are counted: a document retried twice and then indexed
//     counts twice as retried and once as indexed, and the documents of a
//     message redelivered because another of its documents failed count
//     as indexed again.
//   - vigil_index_bulk_seconds: duration of bulk requests, answered or not.
//   - vigil_index_errors_total{kind}: documents Elasticsearch did not
//     accept on an attempt, whatever the reason (refused, or the request
//     failed: Elasticsearch down, timeout); the signal for alerting on
//     Elasticsearch write errors.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		docs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_index_documents_total",
			Help: "Documents sent to Elasticsearch, by kind and result (indexed, retried, deadletter).",
		}, []string{"kind", "result"}),
		bulk: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_index_bulk_seconds",
			Help:    "Duration of Elasticsearch bulk requests.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_index_errors_total",
			Help: "Documents Elasticsearch did not accept on an attempt (refused, or the request failed), by kind.",
		}, []string{"kind"}),
	}
	if reg != nil {
		m.docs = register(reg, m.docs)
		m.bulk = register(reg, m.bulk)
		m.errors = register(reg, m.errors)
	}
	for _, k := range Kinds {
		for _, r := range []string{ResultIndexed, ResultRetried, ResultDeadLetter} {
			m.docs.WithLabelValues(k, r)
		}
		m.errors.WithLabelValues(k)
	}
	return m
}

// register registers c with reg, or returns the collector registered
// before under the same name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
