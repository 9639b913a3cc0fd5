package httpapi

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connGuard caps the public listener's connections, in all and per client
// address, so that no client can exhaust the process's file descriptors
// and memory by opening connections and keeping them idle.
//
// A connection from a client that holds PerClient already is closed at
// once; a client is an IPv4 address or an IPv6 /64, as for the rate limit
// (trusted proxies are exempt: their clients are many; so are 127.0.0.1
// and ::1, where a proxy or a load generator on the same host connects
// from). A connection past Max makes room by closing one that waits
// without a request in progress
// (kept alive after a request, or not yet done sending a request head:
// silent or slow): the longest waiting of a random sample, a trusted
// proxy's only if no other waits, so the choice costs the same however
// many are open. If every connection has a request in progress, the new
// one is closed. Each refusal and eviction is counted.
type connGuard struct {
	max, perClient int
	trusted        func(netip.Addr) bool

	m *Metrics

	mu      sync.Mutex // over total and clients, and eviction
	total   int
	clients map[netip.Addr]int
	// conns holds every connection the server has seen (the conn its
	// ConnState hook gets: a *tls.Conn for HTTPS) and its state. The hook
	// runs twice a request, so it takes no lock.
	conns sync.Map // net.Conn → *connState
}

// connState is since when (unix nanoseconds) a connection has had no
// request in progress, 0 while it has one; whether it had one before
// (idle) or never (new); and whether its peer is a trusted proxy.
type connState struct {
	waitingSince atomic.Int64
	idle         atomic.Bool
	trusted      bool
}

var localhost4, localhost6 = netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()

// evictSample is how many waiting connections eviction looks at.
const evictSample = 64

// defaultMaxConns is Max when it is not configured: half the process's
// file descriptor limit (the rest is for the bus, Redis, log files and the
// other listeners), at most 16,384.
func defaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 4096
	}
	return int(min(rl.Cur/2, 16384))
}

func newConnGuard(maxConns, perClient int, trusted func(netip.Addr) bool, m *Metrics) *connGuard {
	return &connGuard{
		max: maxConns, perClient: perClient, trusted: trusted, m: m,
		clients: map[netip.Addr]int{},
	}
}

// listen wraps ln so that its connections pass the guard.
func (g *connGuard) listen(ln net.Listener) net.Listener { return &guardedListener{ln, g} }

type guardedListener struct {
	net.Listener
	g *connGuard
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if gc := l.g.admit(c); gc != nil {
			return gc, nil
		}
	}
}

// admit counts c in, or closes it (nil) when its client holds its share
// or the listener is full with nothing to evict.
func (g *connGuard) admit(c net.Conn) net.Conn {
	addr := peerAddr(c)
	client := limiterKey(addr)
	g.mu.Lock()
	if g.perClient > 0 && addr.IsValid() && g.clients[client] >= g.perClient && !g.trusted(addr) && addr != localhost4 && addr != localhost6 {
		g.mu.Unlock()
		g.m.ConnsRefused.WithLabelValues("per_client").Inc()
		c.Close()
		return nil
	}
	var victim net.Conn
	var vs *connState
	if g.max > 0 && g.total >= g.max {
		if victim, vs = g.evictable(); victim == nil {
			g.mu.Unlock()
			g.m.ConnsRefused.WithLabelValues("limit").Inc()
			c.Close()
			return nil
		}
	}
	g.total++
	g.clients[client]++
	g.mu.Unlock()
	g.m.Conns.Inc()
	if victim != nil {
		state := "new"
		if vs.idle.Load() {
			state = "idle"
		}
		g.m.ConnsEvicted.WithLabelValues(state).Inc()
		if tc, ok := victim.(*tls.Conn); ok {
			// Not tls.Conn.Close: its close_notify may wait on a slow
			// peer. Closing the socket releases the count.
			victim = tc.NetConn()
		}
		victim.Close()
	}
	return &guardedConn{Conn: c, g: g, client: client}
}

// evictable picks and claims a connection to close: of a random sample of
// those waiting without a request in progress, the one waiting longest, a
// trusted proxy's only if no other is waiting. nil if none is waiting.
func (g *connGuard) evictable() (net.Conn, *connState) {
	for range 3 { // a pick that starts a request meanwhile is passed over
		var victim net.Conn
		var vs *connState
		var oldest int64
		seen := 0
		g.conns.Range(func(k, v any) bool {
			cs := v.(*connState)
			t := cs.waitingSince.Load()
			if t == 0 {
				return true
			}
			if victim == nil || vs.trusted && !cs.trusted || vs.trusted == cs.trusted && t < oldest {
				victim, vs, oldest = k.(net.Conn), cs, t
			}
			seen++
			return seen < evictSample
		})
		if victim == nil {
			return nil, nil
		}
		if vs.waitingSince.CompareAndSwap(oldest, 0) { // not to be chosen again
			return victim, vs
		}
	}
	return nil, nil
}

// peerAddr is the address a connection comes from.
func peerAddr(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// state is the http.Server's ConnState hook: it tracks which connections
// wait without a request in progress.
func (g *connGuard) state(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		cs := &connState{trusted: g.trusted(peerAddr(c))}
		cs.waitingSince.Store(time.Now().UnixNano())
		g.conns.Store(c, cs)
	case http.StateIdle, http.StateActive:
		if v, ok := g.conns.Load(c); ok {
			cs := v.(*connState)
			if st == http.StateActive {
				cs.waitingSince.Store(0)
			} else {
				cs.idle.Store(true)
				cs.waitingSince.Store(time.Now().UnixNano())
			}
		}
	default: // closed, hijacked
		g.conns.Delete(c)
	}
}

// release counts a closed connection out.
func (g *connGuard) release(client netip.Addr) {
	g.mu.Lock()
	g.total--
	if n := g.clients[client] - 1; n > 0 {
		g.clients[client] = n
	} else {
		delete(g.clients, client)
	}
	g.mu.Unlock()
	g.m.Conns.Dec()
}

// guardedConn releases its place in the guard when it is first closed.
type guardedConn struct {
	net.Conn
	g      *connGuard
	client netip.Addr
	once   sync.Once
}

// CloseWrite half-closes the connection, as net/http does after some
// errors, when the socket can.
func (c *guardedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *guardedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.g.release(c.client) })
	return err
}
