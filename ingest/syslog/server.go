package syslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxDatagram is the largest UDP payload there can be.
const maxDatagram = 65535

// Run binds the configured sockets and serves until ctx is done; then it
// closes the sockets and every TCP connection and returns nil once every
// goroutine it started has returned, which includes handler calls under
// way. A bind error is returned at once, with nothing left open. Run may be
// called only once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("syslog: Run called twice")
	}
	var lc net.ListenConfig
	var udp *net.UDPConn
	if s.cfg.UDP != "" {
		pc, err := lc.ListenPacket(ctx, "udp", s.cfg.UDP)
		if err != nil {
			return fmt.Errorf("syslog: listening on udp %s: %w", s.cfg.UDP, err)
		}
		udp = pc.(*net.UDPConn)
		if err := udp.SetReadBuffer(s.cfg.ReadBuffer); err != nil {
			s.log.Warn("setting the UDP receive buffer", "bytes", s.cfg.ReadBuffer, "err", err)
		}
		if !countDrops(udp) {
			s.log.Info("datagrams the kernel drops when the UDP receive buffer is full are not counted on this system")
		}
	}
	var ln net.Listener
	if s.cfg.TCP != "" {
		var err error
		if ln, err = lc.Listen(ctx, "tcp", s.cfg.TCP); err != nil {
			if udp != nil {
				udp.Close()
			}
			return fmt.Errorf("syslog: listening on tcp %s: %w", s.cfg.TCP, err)
		}
	}

	var udpAddr, tcpAddr net.Addr
	if udp != nil {
		udpAddr = udp.LocalAddr()
	}
	if ln != nil {
		tcpAddr = ln.Addr()
	}
	s.mu.Lock()
	s.udpAddr, s.tcpAddr = udpAddr, tcpAddr
	s.mu.Unlock()
	close(s.ready)
	s.log.Info("syslog receiver listening", "udp", udpAddr, "tcp", tcpAddr)

	var wg sync.WaitGroup
	if udp != nil {
		wg.Go(func() { s.serveUDP(ctx, udp) })
	}
	if ln != nil {
		wg.Go(func() { s.serveTCP(ctx, ln, &wg) })
	}
	<-ctx.Done()
	if udp != nil {
		udp.Close()
	}
	if ln != nil {
		ln.Close()
	}
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	wg.Wait()
	return nil
}

// serveUDP handles datagrams until conn is closed. It reuses one buffer and
// one Message, so a message costs no allocation once the header strings
// are cached.
func (s *Server) serveUDP(ctx context.Context, conn *net.UDPConn) {
	// One byte more than the longest message, to notice a longer one: the
	// kernel cuts a datagram to the buffer silently.
	buf := make([]byte, min(s.cfg.MaxMessage, maxDatagram)+1)
	oob := make([]byte, 64) // room for the drop count's control message
	var dropped uint32      // the socket's drop count as last read
	p := parser{strs: make(map[string]string)}
	var m Message
	for {
		n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if oobn > 0 {
			// The count is the socket's since it opened (wrapping at
			// 2^32); the kernel attaches it once it is not zero.
			if total, ok := dropCount(oob[:oobn]); ok && total != dropped {
				s.udpDropped.Add(uint64(total - dropped))
				dropped = total
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("reading a UDP datagram", "err", err)
			if !sleep(ctx, 10*time.Millisecond) {
				return
			}
			continue
		}
		m.Peer = from.Addr().Unmap()
		if !s.allowed(m.Peer) {
			s.denied.Add(1)
			continue
		}
		s.received.Add(1)
		b := buf[:n]
		if n > s.cfg.MaxMessage {
			b = b[:s.cfg.MaxMessage]
			s.tooLong.Add(1)
		}
		s.deliver(&p, b, &m)
	}
}

// deliver parses b into m and hands it to the handler, or counts it as
// malformed.
func (s *Server) deliver(p *parser, b []byte, m *Message) {
	if r, detail := p.parse(b, time.Now(), m); r != rOK {
		s.malformed[r].Add(1)
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("malformed syslog message", "peer", m.Peer, "reason", reasonNames[r], "detail", detail)
		}
		return
	}
	s.handle(m)
}

// serveTCP accepts connections until ln is closed, serving each in a
// goroutine counted in wg.
func (s *Server) serveTCP(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accepting a TCP connection", "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return
		}
		tc := &tcpConn{}
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			tc.peer = a.AddrPort().Addr().Unmap()
		}
		if !s.allowed(tc.peer) {
			s.mu.Unlock()
			c.Close()
			s.denied.Add(1)
			s.log.Debug("syslog connection from outside syslog_allow closed", "peer", tc.peer)
			continue
		}
		tc.lastRead.Store(time.Now().UnixNano())
		// The victim, should one be needed: a connection that has never
		// sent anything if there is one (not a forwarder), else the one
		// silent longest.
		held := 0
		var victim net.Conn
		var oldest int64
		victimSent := true
		for oc, o := range s.conns {
			if o.peer == tc.peer {
				held++
			}
			sent := o.sent.Load()
			if t := o.lastRead.Load(); victim == nil || victimSent && !sent || victimSent == sent && t < oldest {
				victim, oldest, victimSent = oc, t, sent
			}
		}
		if held >= s.cfg.MaxConnsPerPeer {
			s.mu.Unlock()
			c.Close()
			s.connsRejected.Add(1)
			s.log.Debug("too many syslog connections from one address, closing the new one", "peer", tc.peer, "max_conns_per_peer", s.cfg.MaxConnsPerPeer)
			continue
		}
		if len(s.conns) >= s.cfg.MaxConns && victim != nil {
			// Make room: the connection silent for longest goes (its
			// serveConn ends and counts it out).
			delete(s.conns, victim)
			victim.Close()
			s.connsEvicted.Add(1)
			s.log.Debug("syslog connections at max_conns, closing the one idle longest", "peer", victim.RemoteAddr().String(), "idle", time.Since(time.Unix(0, oldest)))
		}
		s.conns[c] = tc
		s.connsOpen.Add(1)
		s.mu.Unlock()
		wg.Go(func() { s.serveConn(c, tc) })
	}
}

// allowed reports whether messages from peer are taken.
func (s *Server) allowed(peer netip.Addr) bool {
	if len(s.cfg.Allow) == 0 {
		return true
	}
	for _, p := range s.cfg.Allow {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}

// tcpConn is what the server knows of an open TCP connection.
type tcpConn struct {
	peer     netip.Addr
	lastRead atomic.Int64 // unix nanoseconds of the last read that returned data, or of the accept
	sent     atomic.Bool  // a read has returned data
}

// serveConn reads messages from one TCP connection until it ends, fails,
// idles out or is closed by Run or to make room.
func (s *Server) serveConn(c net.Conn, tc *tcpConn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c) // gone already if it was evicted
		s.connsOpen.Add(-1)
		s.mu.Unlock()
	}()
	peer := tc.peer
	fr := newFrameReader(deadlineReader{c, s.cfg.IdleTimeout, tc}, s.cfg.MaxMessage)
	p := parser{strs: make(map[string]string)}
	m := Message{Peer: peer}
	for {
		frame, err := fr.next()
		switch {
		case err == nil:
			s.received.Add(1)
			m.Peer = peer
			s.deliver(&p, frame, &m)
			continue
		case errors.Is(err, errFrameTooLong):
			s.received.Add(1)
			s.tooLong.Add(1)
			s.malformed[rTooLong].Add(1)
			s.log.Debug("skipped a syslog frame over max_message", "peer", peer, "max_message", s.cfg.MaxMessage)
			continue
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		case errors.Is(err, errBadFraming), errors.Is(err, io.ErrUnexpectedEOF):
			s.received.Add(1)
			s.malformed[rBadFraming].Add(1)
			s.log.Warn("closing a syslog connection", "peer", peer, "err", err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.log.Debug("closing an idle syslog connection", "peer", peer, "idle_timeout", s.cfg.IdleTimeout)
		default:
			s.log.Warn("reading a syslog connection", "peer", peer, "err", err)
		}
		return
	}
}

// deadlineReader reads from a connection with an idle timeout per read,
// noting when a read last returned data.
type deadlineReader struct {
	c       net.Conn
	timeout time.Duration
	tc      *tcpConn
}

// Read sets the read deadline and reads.
func (r deadlineReader) Read(p []byte) (int, error) {
	if err := r.c.SetReadDeadline(time.Now().Add(r.timeout)); err != nil {
		return 0, err
	}
	n, err := r.c.Read(p)
	if n > 0 {
		r.tc.lastRead.Store(time.Now().UnixNano())
		r.tc.sent.Store(true)
	}
	return n, err
}

// sleep waits for d and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
