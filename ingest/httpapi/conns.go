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
// A client is an IPv4 address or an IPv6 /64, as for the rate limit
// (trusted proxies are exempt from the per-client cap: their clients are
// many; so are 127.0.0.1 and ::1, where a proxy or a load generator on the
// same host connects from). A connection that would take its client past
// PerClient, or the listener past Max, makes room by closing one that
// waits without a request in progress (kept alive after a request, or not
// yet done sending a request head: silent or slow):
//   - past PerClient, the client's own connection waiting longest, so many
//     users behind one address (a carrier-grade NAT) take turns rather
//     than the newest being refused while others' connections sit idle;
//   - past Max, the longest waiting of a random sample of all connections,
//     a trusted proxy's only if no other waits, so the choice costs the
//     same however many are open.
//
// If none waits, the new connection is closed. Each refusal and eviction
// is counted.
type connGuard struct {
	max, perClient int
	trusted        func(netip.Addr) bool

	m *Metrics

	mu      sync.Mutex // over total, clients, all and byClient, and eviction
	total   int
	clients map[netip.Addr]int
	// all holds every connection the ConnState hook has seen (the conn it
	// gets: a *tls.Conn for HTTPS); a map, so that eviction's sample
	// starts at a random place.
	all map[net.Conn]*connState
	// byClient holds the connections of each capped client the ConnsState
	// hook has seen (exempt ones are not indexed).
	byClient map[netip.Addr]map[net.Conn]*connState
	// conns is all for the hook's lookups, twice a request, without the
	// lock.
	conns sync.Map // net.Conn → *connState
}

// connState is since when (unix nanoseconds) a connection has had no
// request in progress, 0 while it has one; whether it had one before
// (idle) or never (new); whether its peer is a trusted proxy; and its
// client, if capped per client.
type connState struct {
	waitingSince atomic.Int64
	idle         atomic.Bool
	trusted      bool
	client       netip.Addr // zero if exempt from the per-client cap
}

var localhost4, localhost6 = netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()

// evictSample is how many waiting connections eviction looks at, among at
// most evictScan connections.
const evictSample, evictScan = 64, 1024

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
		clients: map[netip.Addr]int{}, all: map[net.Conn]*connState{}, byClient: map[netip.Addr]map[net.Conn]*connState{},
	}
}

// capped reports whether addr's connections count against the per-client
// cap.
func (g *connGuard) capped(addr netip.Addr) bool {
	return g.perClient > 0 && addr.IsValid() && addr != localhost4 && addr != localhost6 && !g.trusted(addr)
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

// admit counts c in, making room if its client holds its share or the
// listener is full, or closes it (nil) if there is nothing to evict.
func (g *connGuard) admit(c net.Conn) net.Conn {
	addr := peerAddr(c)
	client := limiterKey(addr)
	g.mu.Lock()
	var victim net.Conn
	var vs *connState
	reason := ""
	switch {
	case g.clients[client] >= g.perClient && g.capped(addr):
		reason = "per_client"
		victim, vs = g.evictableOf(client)
	case g.max > 0 && g.total >= g.max:
		reason = "limit"
		victim, vs = g.evictable()
	}
	if reason != "" && victim == nil {
		g.mu.Unlock()
		g.m.ConnsRefused.WithLabelValues(reason).Inc()
		c.Close()
		return nil
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
		g.m.ConnsEvicted.WithLabelValues(reason, state).Inc()
		if tc, ok := victim.(*tls.Conn); ok {
			// Not tls.Conn.Close: its close_notify may wait on a slow
			// peer. Closing the socket releases the count.
			victim = tc.NetConn()
		}
		victim.Close()
	}
	return &guardedConn{Conn: c, g: g, client: client}
}

// evictableOf picks and claims the connection of client to close: the one
// waiting longest without a request in progress; nil if none is waiting.
// g.mu is held.
func (g *connGuard) evictableOf(client netip.Addr) (net.Conn, *connState) {
	for range 3 { // a pick that starts a request meanwhile is passed over
		var victim net.Conn
		var vs *connState
		var oldest int64
		for c, cs := range g.byClient[client] {
			if t := cs.waitingSince.Load(); t != 0 && (victim == nil || t < oldest) {
				victim, vs, oldest = c, cs, t
			}
		}
		if victim == nil {
			return nil, nil
		}
		if vs.waitingSince.CompareAndSwap(oldest, 0) { // not to be chosen again
			return victim, vs
		}
	}
	return nil, nil
}

// evictable picks and claims a connection to close: of a random sample of
// those waiting without a request in progress (evictSample of them, among
// evictScan connections at most, from a random place in g.all), the one
// waiting longest, a trusted proxy's only if no other is waiting. nil if
// none of those is waiting. g.mu is held.
func (g *connGuard) evictable() (net.Conn, *connState) {
	for range 3 { // a pick that starts a request meanwhile is passed over
		var victim net.Conn
		var vs *connState
		var oldest int64
		waiting, scanned := 0, 0
		for c, cs := range g.all {
			if scanned++; scanned > evictScan || waiting == evictSample {
				break
			}
			t := cs.waitingSince.Load()
			if t == 0 {
				continue
			}
			waiting++
			if victim == nil || vs.trusted && !cs.trusted || vs.trusted == cs.trusted && t < oldest {
				victim, vs, oldest = c, cs, t
			}
		}
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
// wait without a request in progress. It runs twice a request and takes
// no lock then, only when a connection opens or closes.
func (g *connGuard) state(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		addr := peerAddr(c)
		cs := &connState{trusted: g.trusted(addr)}
		cs.waitingSince.Store(time.Now().UnixNano())
		g.conns.Store(c, cs)
		g.mu.Lock()
		g.all[c] = cs
		if g.capped(addr) {
			cs.client = limiterKey(addr)
			conns := g.byClient[cs.client]
			if conns == nil {
				conns = map[net.Conn]*connState{}
				g.byClient[cs.client] = conns
			}
			conns[c] = cs
		}
		g.mu.Unlock()
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
		v, ok := g.conns.LoadAndDelete(c)
		if !ok {
			return
		}
		cs := v.(*connState)
		g.mu.Lock()
		delete(g.all, c)
		if cs.client.IsValid() {
			if conns := g.byClient[cs.client]; len(conns) > 1 {
				delete(conns, c)
			} else {
				delete(g.byClient, cs.client)
			}
		}
		g.mu.Unlock()
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
