// Package syslog receives syslog messages over UDP and TCP, so that nginx
// can send its access log straight to Vigil:
//
//	access_log syslog:server=127.0.0.1:5514,tag=nginx combined;
//
// nginx sends RFC 3164 messages over UDP, one per datagram:
//
//	<190>Nov 23 10:00:00 web1 nginx: 203.0.113.7 - - [23/Nov/2026:...] "GET / HTTP/1.1" 200 612 "-" "curl/8"
//
// (without "web1" when nginx is told nohostname). Forwarders such as
// rsyslog and syslog-ng send RFC 5424 over TCP, framed by octet counting
// ("123 <165>1 2026-11-23T10:00:00.003Z web1 nginx - - - ...") or one
// message per line (RFC 6587); each TCP connection's framing is taken from
// its first byte, a digit meaning octet counting.
//
// A Server hands each message to a handler as a *Message whose Content is
// the log line. The handler is called from one goroutine per TCP
// connection and one for UDP, and may block: a blocked TCP connection stops
// being read, and UDP datagrams queue in the socket's receive buffer (and
// are dropped by the kernel when it is full).
package syslog

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxMessage      = 64 << 10
	DefaultMaxConns        = 256
	DefaultMaxConnsPerPeer = 16
	DefaultIdleTimeout     = 5 * time.Minute
	DefaultReadBuffer      = 4 << 20
)

// Limits of Config.MaxMessage. RFC 5424 receivers must accept 480 bytes;
// the upper bound keeps per-connection buffers sane.
const (
	MinMaxMessage = 480
	MaxMaxMessage = 16 << 20
)

// Config configures a Server. At least one of UDP and TCP must be set.
type Config struct {
	// UDP is the address to receive datagrams on, "host:port" as for
	// net.ListenPacket ("127.0.0.1:5514", ":514"); empty means no UDP.
	UDP string
	// TCP is the address to accept connections on; empty means no TCP.
	TCP string
	// MaxMessage is the longest message in bytes, without TCP framing,
	// default 64 KiB, between 480 and 16 MiB. A longer UDP datagram is cut
	// to MaxMessage bytes and still handled; a longer TCP frame is skipped
	// and counted and the connection goes on (with octet counting the
	// frame's length is known; with newline framing the reader skips to the
	// next '\n'). Both count in Stats.TooLong.
	MaxMessage int
	// MaxConns is how many TCP connections may be open at once, default
	// 256. A connection beyond it closes the open one that has gone longest
	// without sending anything (counted in Stats.ConnsEvicted), so idle
	// connections cannot lock a forwarder out.
	MaxConns int
	// MaxConnsPerPeer is how many TCP connections one address may hold,
	// default 16 (a forwarder needs one). One beyond it is closed as soon
	// as it is accepted and counted in Stats.ConnsRejected.
	MaxConnsPerPeer int
	// Allow, when set, are the only networks messages are taken from:
	// datagrams from elsewhere are dropped and TCP connections closed on
	// arrival, counted in Stats.Denied. Empty: any sender.
	Allow []netip.Prefix
	// IdleTimeout closes a TCP connection that sends nothing for this long,
	// default 5m. Time spent in the handler does not count.
	IdleTimeout time.Duration
	// ReadBuffer is the UDP socket's receive buffer (SO_RCVBUF) in bytes,
	// default 4 MiB. It absorbs bursts while the handler is slow. Best
	// effort: Linux caps it at net.core.rmem_max without an error.
	ReadBuffer int
	// Logger receives connection errors and, at debug level, malformed
	// messages. Default: none.
	Logger *slog.Logger
}

// Stats are counters since New, each read atomically. Every message read
// counts in Received, malformed ones included, so that Received minus
// Malformed messages were handed to the handler.
type Stats struct {
	// Received counts datagrams and TCP frames read.
	Received uint64
	// Malformed counts messages dropped: unparseable ones, TCP frames
	// over MaxMessage, and TCP streams whose framing was lost or that ended
	// inside a frame.
	Malformed uint64
	// TooLong counts messages over MaxMessage: UDP datagrams cut (and
	// handled) and TCP frames skipped (also counted in Malformed as
	// "too-long").
	TooLong uint64
	// ConnsRejected counts TCP connections closed on arrival because
	// their address held MaxConnsPerPeer.
	ConnsRejected uint64
	// ConnsEvicted counts TCP connections closed, at MaxConns, to make
	// room for a new one: the one that had sent nothing for the longest.
	ConnsEvicted uint64
	// Denied counts datagrams dropped and TCP connections closed because
	// their sender is outside Config.Allow.
	Denied uint64
	// UDPDropped counts datagrams the kernel dropped because the UDP
	// socket's receive buffer was full: the handler fell behind (the
	// publisher's queue full while NATS is down or slow). They are counted
	// when the next datagram is read, on Linux only.
	UDPDropped uint64
	// ConnsOpen is the number of TCP connections open now.
	ConnsOpen uint64
	// MalformedByReason splits Malformed by reason, with a key for every
	// value of Reasons (zero counts included).
	MalformedByReason map[string]uint64
}

// Server receives syslog messages. Create one with New and call Run once;
// Addrs, Ready and Stats are safe to call from any goroutine.
type Server struct {
	cfg    Config
	handle func(*Message)
	log    *slog.Logger

	ran   atomic.Bool
	ready chan struct{} // closed by Run once bound

	mu      sync.Mutex
	udpAddr net.Addr              // guarded by mu
	tcpAddr net.Addr              // guarded by mu
	conns   map[net.Conn]*tcpConn // guarded by mu: open TCP connections
	closing bool                  // guarded by mu: Run is stopping

	received      atomic.Uint64
	tooLong       atomic.Uint64
	connsRejected atomic.Uint64
	connsEvicted  atomic.Uint64
	denied        atomic.Uint64
	udpDropped    atomic.Uint64
	connsOpen     atomic.Int64
	malformed     [numReasons]atomic.Uint64
}

// New validates cfg and fills in its defaults; it does no I/O (Run binds).
// handle is called for every well-formed message, concurrently from
// several goroutines, and must be safe for that; the *Message and the
// slices in it are reused once handle returns. Errors name every bad field.
func New(cfg Config, handle func(*Message)) (*Server, error) {
	var errs []error
	if cfg.UDP == "" && cfg.TCP == "" {
		errs = append(errs, errors.New("udp, tcp: at least one is required"))
	}
	for _, a := range []struct{ name, addr string }{{"udp", cfg.UDP}, {"tcp", cfg.TCP}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.name, err))
		}
	}
	if cfg.MaxMessage != 0 && (cfg.MaxMessage < MinMaxMessage || cfg.MaxMessage > MaxMaxMessage) {
		errs = append(errs, fmt.Errorf("max_message: must be between %d and %d, or 0 for the default", MinMaxMessage, MaxMaxMessage))
	}
	if cfg.MaxConns < 0 {
		errs = append(errs, errors.New("max_conns: must be >= 0"))
	}
	if cfg.MaxConnsPerPeer < 0 {
		errs = append(errs, errors.New("max_conns_per_peer: must be >= 0"))
	}
	if cfg.IdleTimeout < 0 {
		errs = append(errs, errors.New("idle_timeout: must be >= 0"))
	}
	if cfg.ReadBuffer < 0 {
		errs = append(errs, errors.New("read_buffer: must be >= 0"))
	}
	if handle == nil {
		errs = append(errs, errors.New("handler: must not be nil"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("syslog: invalid config: %w", errors.Join(errs...))
	}
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerPeer == 0 {
		cfg.MaxConnsPerPeer = DefaultMaxConnsPerPeer
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.ReadBuffer == 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:    cfg,
		handle: handle,
		log:    log,
		ready:  make(chan struct{}),
		conns:  make(map[net.Conn]*tcpConn),
	}, nil
}

// Ready returns a channel closed once Run has bound its sockets. It is
// never closed when binding fails.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses, nil for a transport that is off or
// before Ready is closed. With port 0 in Config they hold the chosen port.
func (s *Server) Addrs() (udp, tcp net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.udpAddr, s.tcpAddr
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Received:          s.received.Load(),
		TooLong:           s.tooLong.Load(),
		ConnsRejected:     s.connsRejected.Load(),
		ConnsEvicted:      s.connsEvicted.Load(),
		Denied:            s.denied.Load(),
		UDPDropped:        s.udpDropped.Load(),
		ConnsOpen:         uint64(max(s.connsOpen.Load(), 0)),
		MalformedByReason: make(map[string]uint64, numReasons-1),
	}
	for r := rOK + 1; r < numReasons; r++ {
		n := s.malformed[r].Load()
		st.Malformed += n
		st.MalformedByReason[reasonNames[r]] = n
	}
	return st
}
