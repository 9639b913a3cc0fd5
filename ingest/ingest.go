// Package ingest holds Vigil's collectors: they read outside input (access
// logs today), normalise it to event.Event and publish it on the bus in
// batches, acknowledging their input only once JetStream has it.
package ingest

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// outlive returns a context that ends grace after parent does, or when
// cancel is called, which also stops its timer.
func outlive(parent context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	var mu sync.Mutex
	var timer *time.Timer
	stop := context.AfterFunc(parent, func() {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() == nil {
			timer = time.AfterFunc(grace, cancel)
		}
	})
	return ctx, func() {
		stop()
		cancel()
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
	}
}

// Metrics are the collectors' counters, shared by every collector so each
// source gets the same ones.
type Metrics struct {
	// Events read and normalised, per source and format.
	Events *prometheus.CounterVec
	// Skipped lines or reports that could not be used, per source and reason.
	Skipped *prometheus.CounterVec
	// Published events acknowledged by JetStream, per source.
	Published *prometheus.CounterVec
	// Batches are the JetStream messages that carried the published
	// events, per source: Published/Batches is the mean batch size.
	Batches *prometheus.CounterVec
	// Duplicates are batches JetStream already had (re-sent after a restart,
	// or a POST /events sent again under its Idempotency-Key).
	Duplicates *prometheus.CounterVec
	// PublishRetries counts publishes retried after an error.
	PublishRetries *prometheus.CounterVec
	// Stalled is 1 while a Publisher's group has waited past its
	// StoreTimeout for JetStream (requests are answered 503), else 0.
	Stalled prometheus.Gauge
}

// NewMetrics registers the collector metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_events_total", Help: "Events read and normalised, by source and format.",
		}, []string{"source", "format"}),
		Skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_lines_skipped_total", Help: "Input lines or reports skipped as malformed, by source and reason.",
		}, []string{"source", "reason"}),
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_events_published_total", Help: "Events acknowledged by JetStream, by source.",
		}, []string{"source"}),
		Batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_batches_published_total", Help: "JetStream messages (NDJSON batches) acknowledged, by source; events_published / batches_published is the mean batch size.",
		}, []string{"source"}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_batches_duplicate_total", Help: "Batches JetStream already had and dropped (re-sent after a restart, or an application events request sent again under its Idempotency-Key), by source.",
		}, []string{"source"}),
		PublishRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_publish_retries_total", Help: "Publishes retried after an error, by source.",
		}, []string{"source"}),
		Stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_ingest_publisher_stalled", Help: "1 while JetStream has not stored a group of received events for the store timeout (10s): reports and application events are answered 503 until it does.",
		}),
	}
	reg.MustRegister(m.Events, m.Skipped, m.Published, m.Batches, m.Duplicates, m.PublishRetries, m.Stalled)
	return m
}
