package app

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-soc/vigil/ingest/syslog"
	"github.com/vigil-soc/vigil/ingest/tail"
)

// tailCollector exposes the tailer's statistics.
type tailCollector struct {
	t                                                 *tail.Tailer
	files, bytes, rotations, truncations, cut, replay *prometheus.Desc
}

func newTailCollector(t *tail.Tailer) *tailCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &tailCollector{
		t:           t,
		files:       d("vigil_tail_files", "Log files followed now."),
		bytes:       d("vigil_tail_read_bytes_total", "Bytes read from log files."),
		rotations:   d("vigil_tail_rotations_total", "Log files rotated away (renamed)."),
		truncations: d("vigil_tail_truncations_total", "Log files found truncated (copytruncate) or replaced."),
		cut:         d("vigil_tail_lines_cut_total", "Lines longer than the maximum, cut."),
		replay:      d("vigil_tail_chunks_replayed_total", "Chunks re-sent after a restart (deduplicated by the bus)."),
	}
}

func (c *tailCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.files, c.bytes, c.rotations, c.truncations, c.cut, c.replay} {
		ch <- d
	}
}

func (c *tailCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.t.Stats()
	ch <- prometheus.MustNewConstMetric(c.files, prometheus.GaugeValue, float64(s.FilesFollowed))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.BytesRead))
	ch <- prometheus.MustNewConstMetric(c.rotations, prometheus.CounterValue, float64(s.Rotations))
	ch <- prometheus.MustNewConstMetric(c.truncations, prometheus.CounterValue, float64(s.Truncations))
	ch <- prometheus.MustNewConstMetric(c.cut, prometheus.CounterValue, float64(s.LinesCut))
	ch <- prometheus.MustNewConstMetric(c.replay, prometheus.CounterValue, float64(s.ChunksReplayed))
}

// consumerCollector exposes the JetStream backlog of Vigil's consumers:
// those of the roles this process runs, each a [stream, consumer] pair.
type consumerCollector struct {
	js               jetstream.JetStream
	consumers        [][2]string
	pending, waiting *prometheus.Desc
}

func newConsumerCollector(js jetstream.JetStream, consumers [][2]string) *consumerCollector {
	return &consumerCollector{
		js:        js,
		consumers: consumers,
		pending:   prometheus.NewDesc("vigil_bus_consumer_pending_messages", "Messages in the stream not yet delivered to the consumer (backlog).", []string{"stream", "consumer"}, nil),
		waiting:   prometheus.NewDesc("vigil_bus_consumer_ack_pending_messages", "Messages delivered to the consumer and not yet acknowledged.", []string{"stream", "consumer"}, nil),
	}
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.pending; ch <- c.waiting }

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, sc := range c.consumers {
		cons, err := c.js.Consumer(ctx, sc[0], sc[1])
		if err != nil {
			continue
		}
		info, err := cons.Info(ctx)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending), sc[0], sc[1])
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(info.NumAckPending), sc[0], sc[1])
	}
}

// syslogCollector exposes the syslog receiver's statistics.
type syslogCollector struct {
	s                                                                *syslog.Server
	received, malformed, rejected, evicted, denied, open, udpDropped *prometheus.Desc
}

func newSyslogCollector(s *syslog.Server) *syslogCollector {
	return &syslogCollector{
		s:         s,
		received:  prometheus.NewDesc("vigil_syslog_messages_total", "Syslog messages received (datagrams and TCP frames).", nil, nil),
		malformed: prometheus.NewDesc("vigil_syslog_malformed_total", "Syslog messages that could not be parsed, by reason.", []string{"reason"}, nil),
		rejected:  prometheus.NewDesc("vigil_syslog_connections_rejected_total", "TCP connections closed on arrival: their address held 16 already.", nil, nil),
		evicted:   prometheus.NewDesc("vigil_syslog_connections_evicted_total", "TCP connections closed at the cap of 256 to make room for a new one: the one silent longest.", nil, nil),
		denied:    prometheus.NewDesc("vigil_syslog_denied_total", "Datagrams dropped and TCP connections closed: the sender is outside syslog_allow.", nil, nil),
		open:      prometheus.NewDesc("vigil_syslog_connections", "TCP connections open now.", nil, nil),
		udpDropped: prometheus.NewDesc("vigil_syslog_udp_dropped_total",
			"UDP datagrams the kernel dropped because the receive buffer was full: Vigil fell behind, e.g. while NATS was down (counted when the next datagram is read; Linux).", nil, nil),
	}
}

func (c *syslogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.received, c.malformed, c.rejected, c.evicted, c.denied, c.open, c.udpDropped} {
		ch <- d
	}
}

func (c *syslogCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(s.Received))
	for _, r := range syslog.Reasons() {
		ch <- prometheus.MustNewConstMetric(c.malformed, prometheus.CounterValue, float64(s.MalformedByReason[r]), r)
	}
	ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(s.ConnsRejected))
	ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(s.ConnsEvicted))
	ch <- prometheus.MustNewConstMetric(c.denied, prometheus.CounterValue, float64(s.Denied))
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.ConnsOpen))
	ch <- prometheus.MustNewConstMetric(c.udpDropped, prometheus.CounterValue, float64(s.UDPDropped))
}
