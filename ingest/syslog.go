package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
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
	ctx     context.Context
}

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

// Run serves until ctx is done.
func (c *SyslogCollector) Run(ctx context.Context) error {
	c.ctx = ctx
	return c.srv.Run(ctx)
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
		if err != nil && !errors.Is(err, ErrStopped) {
			c.log.Warn("publishing a syslog event failed", "err", err)
		}
	})
	if err != nil && c.ctx.Err() == nil {
		c.log.Warn("queueing a syslog event failed", "err", err)
	}
}
