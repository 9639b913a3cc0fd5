package syslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// got is a message as the test handler keeps it: the slices are copied
// because the server reuses them.
type got struct {
	Message
	content string
}

// testServer is a Server running on loopback, its messages sent to msgs.
type testServer struct {
	*Server
	msgs     chan got
	udp, tcp string
}

// startServer runs a server with cfg (UDP and TCP on 127.0.0.1:0 unless
// set) until the test ends, and checks that Run then returns nil.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if cfg.UDP == "" {
		cfg.UDP = "127.0.0.1:0"
	}
	if cfg.TCP == "" {
		cfg.TCP = "127.0.0.1:0"
	}
	msgs := make(chan got, 100)
	s, err := New(cfg, func(m *Message) {
		g := got{Message: *m, content: string(m.Content)}
		g.Content, g.StructuredData = nil, nil
		msgs <- g
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("server not ready")
	}
	udp, tcp := s.Addrs()
	return &testServer{Server: s, msgs: msgs, udp: udp.String(), tcp: tcp.String()}
}

// next returns the next message handled, failing after a while.
func (s *testServer) next(t *testing.T) got {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return got{}
	}
}

// none checks that no message arrives within a short while.
func (s *testServer) none(t *testing.T) {
	t.Helper()
	select {
	case m := <-s.msgs:
		t.Fatalf("unexpected message %q", m.content)
	case <-time.After(100 * time.Millisecond):
	}
}

// waitStats polls the stats until ok accepts them.
func (s *testServer) waitStats(t *testing.T, what string, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := s.Stats()
		if ok(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never %s: %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

var localhost = netip.MustParseAddr("127.0.0.1")

func TestUDP(t *testing.T) {
	s := startServer(t, Config{MaxMessage: 480})
	c := dial(t, "udp", s.udp)
	write(t, c, "<190>Nov 23 10:00:00 web1 nginx: "+nginxLine)
	write(t, c, "<190>Nov 23 10:00:01 nginx: "+nginxLine+"\n")
	for _, host := range []string{"web1", ""} {
		m := s.next(t)
		if m.content != nginxLine || m.AppName != "nginx" || m.Hostname != host || m.Peer != localhost || m.Format != FormatRFC3164 || m.Facility != 23 || m.Severity != 6 {
			t.Errorf("got %+v %q", m.Message, m.content)
		}
		if m.Time.IsZero() {
			t.Error("no time")
		}
	}

	// A datagram over MaxMessage is cut and still handled; junk is counted.
	write(t, c, "<13>"+strings.Repeat("x", 1000))
	if m := s.next(t); len(m.content) != 480-4 {
		t.Errorf("cut datagram: %d bytes of content, want %d", len(m.content), 480-4)
	}
	write(t, c, "no priority")
	write(t, c, "")
	s.waitStats(t, "counting junk", func(st Stats) bool {
		return st.Received == 5 && st.TooLong == 1 && st.Malformed == 2 &&
			st.MalformedByReason[ReasonNoPriority] == 1 && st.MalformedByReason[ReasonEmpty] == 1
	})
}

// TestUDPDropped: datagrams the kernel drops at the socket while the
// handler is behind (its receive buffer full) are counted, as many as the
// kernel says it dropped there (/proc/net/udp).
func TestUDPDropped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("drops are counted on Linux only (SO_RXQ_OVFL)")
	}
	s := startServer(t, Config{ReadBuffer: 4096})
	c := dial(t, "udp", s.udp)
	// The handler blocks once the test's channel (100) is full, as the
	// collector does while the publisher's queue is full.
	for range 999 {
		write(t, c, "<190>Nov 23 10:00:00 web1 nginx: "+nginxLine)
	}
	var kernel uint64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// Dropping, and done: the count holds still.
		if n := socketDrops(t, s.udp); n > 0 && n == kernel {
			break
		} else {
			kernel = n
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kernel dropped %d datagrams with a full receive buffer: the test proves nothing", kernel)
		}
	}
	stop, drained := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-s.msgs:
			case <-stop:
				return
			}
		}
	}()
	defer func() { close(stop); <-drained }()
	// The count comes with the next datagram read.
	time.Sleep(100 * time.Millisecond)
	write(t, c, "<190>Nov 23 10:00:00 web1 nginx: "+nginxLine)
	s.waitStats(t, "counting the kernel's drops", func(st Stats) bool { return st.UDPDropped == kernel })
}

// socketDrops returns the drops /proc/net/udp shows for the socket bound
// to addr.
func socketDrops(t *testing.T, addr string) uint64 {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", ap.Port()) // 127.0.0.1, as the kernel prints it
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 12 && f[1] == local {
			n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no socket %s in /proc/net/udp", local)
	return 0
}

func TestTCPFraming(t *testing.T) {
	msgs := []string{
		"<190>Nov 23 10:00:00 web1 nginx: " + nginxLine,
		"<165>1 2026-11-23T10:00:00.003Z web1 nginx - - [x@1 a=\"]\"] \xef\xbb\xbf" + nginxLine,
		"<190>Nov 23 10:00:02 nginx: " + nginxLine + "\r",
	}
	framings := map[string]func(...string) string{
		"octet counting": octet,
		"newline":        func(m ...string) string { return strings.Join(m, "\n") + "\n" },
	}
	for name, frame := range framings {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, Config{})
			c := dial(t, "tcp", s.tcp)
			check := func() {
				t.Helper()
				for i := range msgs {
					m := s.next(t)
					if m.content != nginxLine || m.AppName != "nginx" || m.Peer != localhost {
						t.Errorf("message %d: %+v %q", i, m.Message, m.content)
					}
				}
			}
			// Several messages in one write.
			write(t, c, frame(msgs...))
			check()
			// Each message split over several writes.
			stream := frame(msgs...)
			for i := 0; i < len(stream); i += 7 {
				write(t, c, stream[i:min(i+7, len(stream))])
				time.Sleep(time.Millisecond)
			}
			check()
			s.waitStats(t, "counting", func(st Stats) bool { return st.Received == 6 && st.ConnsOpen == 1 })
			c.Close()
			s.waitStats(t, "closing", func(st Stats) bool { return st.ConnsOpen == 0 })
			if st := s.Stats(); st.Malformed != 0 {
				t.Errorf("stats: %+v", st)
			}
		})
	}
}

func TestTCPTooLong(t *testing.T) {
	long := "<13>Nov 23 10:00:00 host app: " + strings.Repeat("x", 1000)
	framings := map[string]string{
		"octet counting": octet("<13>first", long, "<13>next"),
		"newline":        "<13>first\n" + long + "\n<13>next\n",
	}
	for name, stream := range framings {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, Config{MaxMessage: 480})
			c := dial(t, "tcp", s.tcp)
			write(t, c, stream)
			for _, want := range []string{"first", "next"} {
				if m := s.next(t); m.content != want {
					t.Errorf("got %q, want %q", m.content, want)
				}
			}
			s.waitStats(t, "counting", func(st Stats) bool {
				return st.Received == 3 && st.TooLong == 1 && st.Malformed == 1 && st.MalformedByReason[ReasonTooLong] == 1
			})
		})
	}
}

func TestTCPBadFraming(t *testing.T) {
	s := startServer(t, Config{})
	c := dial(t, "tcp", s.tcp)
	write(t, c, octet("<13>ok")+"12x <13>lost")
	if m := s.next(t); m.content != "ok" {
		t.Errorf("got %q", m.content)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after bad framing: %v, want EOF", err)
	}
	s.none(t)
	s.waitStats(t, "counting", func(st Stats) bool { return st.MalformedByReason[ReasonBadFraming] == 1 && st.ConnsOpen == 0 })
}

func TestTCPIdleTimeout(t *testing.T) {
	s := startServer(t, Config{IdleTimeout: 100 * time.Millisecond})
	c := dial(t, "tcp", s.tcp)
	write(t, c, "<13>hello\n")
	s.next(t)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read from idle connection: %v, want EOF", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
}

// dialFrom connects from the loopback address 127.0.0.x, standing for
// another sender.
func dialFrom(t *testing.T, x int, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(x))}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closed reports whether the server closed c.
func closed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestMaxConns: at MaxConns a new connection closes one that has never
// sent anything (else the one silent longest), so connections opened and
// left idle cannot lock a forwarder out, and a quiet forwarder is not the
// one to go; an address holding MaxConnsPerPeer gets its next one closed on
// arrival.
func TestMaxConns(t *testing.T) {
	s := startServer(t, Config{MaxConns: 2, MaxConnsPerPeer: 1})
	busy := dialFrom(t, 22, s.tcp) // a forwarder, quiet since its first line
	write(t, busy, "<13>two\n")
	s.next(t)
	idle := dialFrom(t, 21, s.tcp) // connects later and never sends
	s.waitStats(t, "accepting", func(st Stats) bool { return st.ConnsOpen == 2 })
	if extra := dialFrom(t, 22, s.tcp); !closed(extra) {
		t.Fatal("a second connection from one address was kept (MaxConnsPerPeer 1)")
	}
	s.waitStats(t, "rejecting", func(st Stats) bool { return st.ConnsRejected == 1 && st.ConnsOpen == 2 })

	forwarder := dialFrom(t, 23, s.tcp)
	if !closed(idle) {
		t.Fatal("at MaxConns, the connection that never sent anything was not closed")
	}
	write(t, forwarder, "<13>three\n")
	if m := s.next(t); m.content != "three" {
		t.Errorf("got %q", m.content)
	}
	write(t, busy, "<13>four\n")
	if m := s.next(t); m.content != "four" {
		t.Errorf("got %q from the connection that was sending", m.content)
	}
	s.waitStats(t, "evicting", func(st Stats) bool { return st.ConnsEvicted == 1 && st.ConnsOpen == 2 })
}

// TestRunStops checks that cancelling Run closes open connections, waits
// for their goroutines and leaves none behind.
func TestRunStops(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	msgs := make(chan string, 10)
	s, err := New(Config{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0"}, func(m *Message) { msgs <- string(m.Content) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	_, tcp := s.Addrs()
	c, err := net.Dial("tcp", tcp.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	write(t, c, "<13>hi\n<13>partial")
	if m := <-msgs; m != "hi" {
		t.Errorf("got %q", m)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if st := s.Stats(); st.ConnsOpen != 0 {
		t.Errorf("connections open after Run: %d", st.ConnsOpen)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after Run returned: %v, want EOF", err)
	}
	goleak.VerifyNone(t, ignore)
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestBindError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for name, cfg := range map[string]Config{
		"tcp": {UDP: "127.0.0.1:0", TCP: ln.Addr().String()},
		"udp": {UDP: pc.LocalAddr().String()},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := New(cfg, func(*Message) {})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Run(context.Background()) }()
			select {
			case err := <-done:
				if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), name) {
					t.Errorf("Run: %v, want address in use on %s", err, name)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return a bind error")
			}
			select {
			case <-s.Ready():
				t.Error("Ready closed after a bind error")
			default:
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	handle := func(*Message) {}
	tests := []struct {
		cfg    Config
		handle func(*Message)
		want   []string
	}{
		{Config{}, handle, []string{"udp, tcp: at least one"}},
		{Config{UDP: "nohost", TCP: "a:b:c"}, handle, []string{"udp: ", "tcp: "}},
		{Config{TCP: ":0", MaxMessage: 100, MaxConns: -1, MaxConnsPerPeer: -1, IdleTimeout: -1, ReadBuffer: -1}, nil,
			[]string{"max_message: ", "max_conns: ", "max_conns_per_peer: ", "idle_timeout: ", "read_buffer: ", "handler: "}},
		{Config{TCP: ":0", MaxMessage: MaxMaxMessage + 1}, handle, []string{"max_message: "}},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, tt.handle)
		if err == nil {
			t.Errorf("New(%+v) succeeded", tt.cfg)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New(%+v): %q does not name %q", tt.cfg, err, w)
			}
		}
	}
	s, err := New(Config{TCP: ":0"}, handle)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{TCP: ":0", MaxMessage: DefaultMaxMessage, MaxConns: DefaultMaxConns, MaxConnsPerPeer: DefaultMaxConnsPerPeer,
		IdleTimeout: DefaultIdleTimeout, ReadBuffer: DefaultReadBuffer}
	if fmt.Sprint(s.cfg) != fmt.Sprint(want) {
		t.Errorf("defaults: %+v, want %+v", s.cfg, want)
	}
	if u, tc := s.Addrs(); u != nil || tc != nil {
		t.Errorf("Addrs before Run: %v %v", u, tc)
	}
}

// TestAllow: with Allow set, datagrams from other senders are dropped and
// their TCP connections closed on arrival, each counted; allowed senders
// are served.
func TestAllow(t *testing.T) {
	s := startServer(t, Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	udpFrom := func(x int, msg string) {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(x))}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s.udp)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		write(t, c, msg)
	}
	udpFrom(1, "<13>from outside\n")
	s.waitStats(t, "denying a datagram", func(st Stats) bool { return st.Denied == 1 })
	udpFrom(2, "<13>allowed\n")
	if m := s.next(t); m.content != "allowed" {
		t.Errorf("got %q, want the allowed sender's message only", m.content)
	}
	if c := dialFrom(t, 3, s.tcp); !closed(c) {
		t.Fatal("a TCP connection from outside Allow was kept")
	}
	s.waitStats(t, "denying a connection", func(st Stats) bool { return st.Denied == 2 && st.ConnsOpen == 0 })
	c := dialFrom(t, 2, s.tcp)
	write(t, c, "<13>allowed over tcp\n")
	if m := s.next(t); m.content != "allowed over tcp" {
		t.Errorf("got %q", m.content)
	}
}
