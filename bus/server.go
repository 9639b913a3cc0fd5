// Package bus is Vigil's use of NATS JetStream: an embedded server for
// single-process deployments, the streams and their subjects, and the
// batch format events travel in.
package bus

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedConfig configures the in-process NATS server `vigil run` starts
// when no NATS URL is given.
type EmbeddedConfig struct {
	// StoreDir is where JetStream keeps its files (<data-dir>/jetstream).
	StoreDir string
	// Listen, when set ("127.0.0.1:4222"), also serves NATS clients on
	// TCP, e.g. the nats CLI for inspection. Empty: in-process only.
	Listen string
	// MaxStore caps JetStream file storage in bytes; 0 = server default.
	MaxStore int64
}

// Embedded is a running in-process NATS server with JetStream.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts the server and waits until it accepts connections.
func StartEmbedded(cfg EmbeddedConfig, logger *slog.Logger) (*Embedded, error) {
	opts := &server.Options{
		ServerName:         "vigil-embedded",
		JetStream:          true,
		StoreDir:           filepath.Clean(cfg.StoreDir),
		JetStreamMaxStore:  cfg.MaxStore,
		NoSigs:             true,
		DontListen:         cfg.Listen == "",
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 64 << 20,
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: %w", cfg.Listen, err)
		}
		opts.Host = host
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("nats listen address %q: bad port", cfg.Listen)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("creating embedded NATS server: %w", err)
	}
	if logger != nil {
		srv.SetLoggerV2(&natsLogger{l: logger.With("component", "nats")}, false, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server not ready after 30s (store %s)", cfg.StoreDir)
	}
	return &Embedded{srv: srv}, nil
}

// Connect returns a client connection to the embedded server, in-process
// (no TCP).
func (e *Embedded) Connect(name string) (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(e.srv), nats.Name(name), nats.MaxReconnects(-1))
}

// Server returns the underlying server, for tests.
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Dial connects to an external NATS server (cluster) at url, retrying
// forever on disconnects.
func Dial(url, name string, logger *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { logger.Info("nats reconnected", "url", c.ConnectedUrl()) }))
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS %s: %w", url, err)
	}
	return nc, nil
}

// natsLogger adapts slog to the nats-server logger.
type natsLogger struct{ l *slog.Logger }

func (n *natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Tracef(format string, v ...any)  {}
