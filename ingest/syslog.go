package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest/accesslog"
	"github.com/vigil-soc/vigil/ingest/syslog"
)

// SyslogCollector receives access log lines over syslog (nginx's
// access_log syslog:server=...) and publishes their events. Each message's
// content is parsed as an access log line, its format detected per line.
type SyslogCollector struct {
	srv     *syslog.Server
	pub     *Publisher
	m       *Metrics
	log     *slog.Logger
	parsers sync.Pool
	ctx     context.Context // of Submit: ends queueGrace after Run's
	lost    atomic.Int64    // lines received but not stored
}

// queueGrace is how long, once Run's context is done, messages already
// read may still wait for room in the publisher's queue.
const queueGrace = 5 * time.Second

// NewSyslogCollector validates cfg; Run binds and serves.
func NewSyslogCollector(cfg syslog.Config, pub *Publisher, m *Metrics, logger *slog.Logger) (*SyslogCollector, error) {
	c := &SyslogCollector{pub: pub, m: m, log: logger}
	c.parsers.New = func() any { return accesslog.NewParser(accesslog.FormatUnknown) }
	cfg.Logger = logger
	srv, err := syslog.New(cfg, c.handle)
	if err != nil {
		return nil, err
	}
	c.srv = srv
	return c, nil
}

// Server returns the syslog server, for its addresses and statistics.
func (c *SyslogCollector) Server() *syslog.Server { return c.srv }

// Run serves until ctx is done. It then stops reading and returns once
// the messages already read are queued to the publisher, which stores them
// if it runs on (waiting up to queueGrace for room in its queue); the
// number of those it could not queue, or the publisher failed to store,
// is logged.
func (c *SyslogCollector) Run(ctx context.Context) error {
	qctx, cancel := outlive(ctx, queueGrace)
	defer cancel()
	c.ctx = qctx
	err := c.srv.Run(ctx)
	if n := c.lost.Load(); n > 0 {
		c.log.Warn("syslog lines received but not stored: the publisher had stopped or had no room for them as Vigil stopped", "lines", n)
	}
	return err
}

// handle parses one message (called from several goroutines) and queues its
// event; it blocks while the publisher's queue is full, which slows TCP
// senders and leaves UDP datagrams in the socket buffer.
func (c *SyslogCollector) handle(msg *syslog.Message) {
	p := c.parsers.Get().(*accesslog.Parser)
	defer c.parsers.Put(p)
	var ev event.Event
	if err := p.Parse(msg.Content, &ev); err != nil {
		reason := "error"
		var le *accesslog.LineError
		if errors.As(err, &le) {
			reason = le.Reason
		}
		c.m.Skipped.WithLabelValues(event.SourceAccess, reason).Inc()
		return
	}
	format := "syslog"
	if ev.Dataset == "apache.access" {
		format = "syslog-apache"
	}
	c.m.Events.WithLabelValues(event.SourceAccess, format).Inc()
	h := sha256.New()
	h.Write(msg.Peer.AsSlice())
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano())))
	h.Write(msg.Content)
	ev.ID = "syslog-" + hex.EncodeToString(h.Sum(nil)[:12])
	err := c.pub.Submit(c.ctx, event.SourceAccess, []event.Event{ev}, func(err error) {
		if err != nil {
			// The publisher stopped before storing it (and logged how
			// many it lost).
			c.lost.Add(1)
		}
	})
	if err != nil {
		c.lost.Add(1)
	}
}
