package detect

import "github.com/prometheus/client_golang/prometheus"

// Collector exposes an Engine's Stats as Prometheus metrics, read at scrape
// time so the hot path only bumps atomics.
type Collector struct {
	stats *Stats
	rules []*Rule

	detections, observations, late, stale, future, suppressed, evicted, expired, keys, quiet *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector for the engine's stats.
func NewCollector(e *Engine) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Collector{
		stats:        e.Stats(),
		rules:        e.RuleSet().Rules(),
		detections:   d("vigil_detect_detections_total", "Detections (alerts fired), by rule.", "rule"),
		observations: d("vigil_detect_observations_total", "Events counted by a rule window."),
		late:         d("vigil_detect_events_late_total", "Events dropped as later than the allowed lateness."),
		stale:        d("vigil_detect_events_stale_total", "Events ignored at start-up as older than their rule's window."),
		future:       d("vigil_detect_events_future_total", "Events dropped as more than a minute ahead of the clock (skewed clocks, forged ages)."),
		suppressed:   d("vigil_detect_events_suppressed_total", "Events ignored because their key is in cooldown after firing."),
		evicted:      d("vigil_detect_keys_evicted_total", "Windows evicted because the key cap was reached."),
		expired:      d("vigil_detect_keys_expired_total", "Windows dropped after their key went quiet."),
		keys:         d("vigil_detect_keys_tracked", "Windows (rule, key) tracked now."),
		quiet:        d("vigil_detect_keys_cooldown", "Keys in cooldown after firing."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.detections, c.observations, c.late, c.stale, c.future, c.suppressed, c.evicted, c.expired, c.keys, c.quiet} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for i, r := range c.rules {
		ch <- prometheus.MustNewConstMetric(c.detections, prometheus.CounterValue, float64(c.stats.Detections[i].Load()), r.ID)
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.observations, c.stats.Observations.Load())
	counter(c.late, c.stats.Late.Load())
	counter(c.stale, c.stats.Stale.Load())
	counter(c.future, c.stats.Future.Load())
	counter(c.suppressed, c.stats.Suppressed.Load())
	counter(c.evicted, c.stats.Evicted.Load())
	counter(c.expired, c.stats.Expired.Load())
	ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(c.stats.Keys.Load()))
	ch <- prometheus.MustNewConstMetric(c.quiet, prometheus.GaugeValue, float64(c.stats.Quiet.Load()))
}
