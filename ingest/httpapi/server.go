// Package httpapi is Vigil's public listener: browsers post CSP violation
// reports to it (legacy report-uri and the Reporting API, with the CORS
// preflight a cross-origin endpoint needs) and the web application posts its
// security events. It is hardened for the open internet: small body limits,
// per-client rate limits, timeouts against slow clients, JSON errors.
package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-soc/vigil/ingest"
	"github.com/vigil-soc/vigil/ingest/csp"
)

// Config configures the listener. Zero values take the defaults.
type Config struct {
	// Listen is the plain-HTTP address; "" = none. Default (set by the
	// caller's config) 127.0.0.1:8080.
	Listen string
	// ListenTLS is the HTTPS address (HTTP/2 enabled); needs TLSCert and
	// TLSKey. Browsers send Reporting API reports only to HTTPS endpoints.
	ListenTLS string
	// TLSCert and TLSKey are PEM files.
	TLSCert, TLSKey string
	// BodyLimit caps a request body; larger → 413. Default 64 KiB.
	BodyLimit int64
	// RatePerSecond and Burst limit requests per client IP; past them →
	// 429. Defaults 20/s and 60.
	RatePerSecond float64
	Burst         int
	// TrustedProxies are the networks whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// EventsTokens are the bearer tokens accepted on /events.
	EventsTokens [][]byte
	// EventsHMACSecret, when set, also accepts /events requests signed with
	// X-Vigil-Signature: t=<unix>,v2=<hex HMAC-SHA256(secret,
	// "v2.<t>."+Idempotency-Key+"."+body)>, or the older v1 over
	// "<t>."+body (see checkSignature).
	EventsHMACSecret []byte
	// MaxSkew is how old (or early) a signature timestamp may be. Default 5m.
	MaxSkew time.Duration
	// CORSOrigins may post reports cross-origin; default any ("*").
	CORSOrigins []string
	// CSPFilter drops extension and browser noise.
	CSPFilter csp.Filter
	// Timeouts bound how long a client may take (see Timeouts); zero
	// fields take its defaults.
	Timeouts Timeouts
	// MaxConns caps the connections open on the public listeners together;
	// at the cap a new connection closes the one that has waited longest
	// without a request in progress (see connGuard). Default half the
	// process's file descriptor limit, at most 16,384; negative = no cap.
	MaxConns int
	// MaxConnsPerClient caps the connections of one client address
	// (trusted proxies exempt). Default 128; negative = no cap.
	MaxConnsPerClient int
	// Logger logs refusals at debug level and failures at warn.
	Logger *slog.Logger
}

// Timeouts bound a connection, so a client that stalls holds a goroutine
// and a socket only for a while.
type Timeouts struct {
	// ReadHeader is the time to send the request headers. Default 5s.
	ReadHeader time.Duration
	// Read is the time to send the whole request. Default 10s.
	Read time.Duration
	// Write is the time from the end of the headers to the end of the
	// answer. Default 25s: the body may take up to Read (10s), and its
	// events up to the publisher's StoreTimeout (10s) before a 503. It
	// is also how long a stop waits for the requests under way.
	Write time.Duration
	// Idle is how long a kept-alive connection may wait for its next
	// request. Default 60s.
	Idle time.Duration
}

func (c *Config) defaults() {
	t := &c.Timeouts
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&t.ReadHeader, 5 * time.Second}, {&t.Read, 10 * time.Second}, {&t.Write, 25 * time.Second}, {&t.Idle, 60 * time.Second}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = 64 << 10
	}
	if c.RatePerSecond <= 0 {
		c.RatePerSecond = 20
	}
	if c.Burst <= 0 {
		c.Burst = 60
	}
	if c.MaxSkew <= 0 {
		c.MaxSkew = 5 * time.Minute
	}
	if len(c.CORSOrigins) == 0 {
		c.CORSOrigins = []string{"*"}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxConns == 0 {
		c.MaxConns = defaultMaxConns()
	}
	if c.MaxConnsPerClient == 0 {
		c.MaxConnsPerClient = 128
	}
}

// Server serves the public endpoints.
type Server struct {
	cfg     Config
	pub     *ingest.Publisher
	m       *Metrics
	limiter *limiter
	guard   *connGuard
	replay  *replayCache
	log     *slog.Logger
	// eventsTokens are the SHA-256 digests of cfg.EventsTokens.
	eventsTokens [][sha256.Size]byte
	// nonce (random, per process) and requests name each unkeyed POST
	// /events, from which its events' ids derive.
	nonce    string
	requests atomic.Uint64
	now      func() time.Time

	mu    sync.Mutex
	addrs map[string]net.Addr
	ready chan struct{}
}

// New checks cfg (it loads the TLS key pair) and returns a server.
func New(cfg Config, pub *ingest.Publisher, m *Metrics) (*Server, error) {
	cfg.defaults()
	if cfg.Listen == "" && cfg.ListenTLS == "" {
		return nil, errors.New("listen: neither listen nor listen_tls is set")
	}
	if cfg.ListenTLS != "" && (cfg.TLSCert == "" || cfg.TLSKey == "") {
		return nil, errors.New("listen_tls: needs tls_cert and tls_key")
	}
	if cfg.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
		}
	}
	s := &Server{
		cfg: cfg, pub: pub, m: m, log: cfg.Logger, now: time.Now, eventsTokens: make([][sha256.Size]byte, len(cfg.EventsTokens)),
		limiter: newLimiter(cfg.RatePerSecond, cfg.Burst),
		replay:  newReplayCache(2 * cfg.MaxSkew),
		addrs:   map[string]net.Addr{},
		ready:   make(chan struct{}),
	}
	var nonce [9]byte
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand)
	s.nonce = "r" + base64.RawURLEncoding.EncodeToString(nonce[:]) + "-"
	for i, tok := range cfg.EventsTokens {
		s.eventsTokens[i] = sha256.Sum256(tok)
	}
	s.guard = newConnGuard(cfg.MaxConns, cfg.MaxConnsPerClient, s.trusted, m)
	return s, nil
}

// Ready is closed once every listener is bound.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the bound address of "http" or "https", after Ready.
func (s *Server) Addr(scheme string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[scheme]
}

// Run serves until ctx is done, then shuts down gracefully: requests
// under way get up to the write timeout to finish.
func (s *Server) Run(ctx context.Context) error {
	type listener struct {
		scheme string
		ln     net.Listener
	}
	var lns []listener
	if s.cfg.Listen != "" {
		ln, err := net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		lns = append(lns, listener{"http", ln})
	}
	if s.cfg.ListenTLS != "" {
		ln, err := net.Listen("tcp", s.cfg.ListenTLS)
		if err != nil {
			for _, l := range lns {
				l.ln.Close()
			}
			return fmt.Errorf("listen_tls: %w", err)
		}
		lns = append(lns, listener{"https", ln})
	}
	s.mu.Lock()
	for _, l := range lns {
		s.addrs[l.scheme] = l.ln.Addr()
		s.log.Info("public listener bound", "scheme", l.scheme, "addr", l.ln.Addr().String())
	}
	s.mu.Unlock()
	close(s.ready)

	var wg sync.WaitGroup
	errs := make(chan error, len(lns))
	var servers []*http.Server
	for _, l := range lns {
		srv := &http.Server{
			Handler:           s.Handler(),
			ReadHeaderTimeout: s.cfg.Timeouts.ReadHeader,
			ReadTimeout:       s.cfg.Timeouts.Read,
			WriteTimeout:      s.cfg.Timeouts.Write,
			IdleTimeout:       s.cfg.Timeouts.Idle,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			ConnState:         s.guard.state,
		}
		servers = append(servers, srv)
		wg.Go(func() {
			var err error
			ln := s.guard.listen(l.ln)
			if l.scheme == "https" {
				err = srv.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("%s listener: %w", l.scheme, err)
			}
		})
	}
	go s.limiter.sweepEvery(ctx, time.Minute)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	// Requests under way are answered (a 204 once their events are
	// stored) before the publisher stops; past the write timeout no
	// answer could be written anyway.
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeouts.Write)
	defer cancel()
	for _, srv := range servers {
		wg.Go(func() {
			if srv.Shutdown(sctx) != nil {
				srv.Close()
			}
		})
	}
	wg.Wait()
	return err
}
