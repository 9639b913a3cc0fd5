// Package redistest gives tests a real Redis. It is for tests only: nothing
// outside _test.go files may import it.
//
// Start uses the server named by the environment variable
// VIGIL_TEST_REDIS_URL when it is set, and otherwise starts a private
// redis-server (found in PATH) on a free loopback port, without persistence,
// that lives as long as the test. Every test gets its own key prefix
// (Server.Prefix), so tests sharing an external server do not see each
// other's keys as long as they keep to their prefix.
package redistest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvURL is the environment variable that names an external Redis to use
// instead of starting one, as redis://host:port/db.
const EnvURL = "VIGIL_TEST_REDIS_URL"

// notFound is the message of the failure when there is no Redis to test
// against; it says how to fix it.
const notFound = "redis-server not found: install it with `apt-get install -y redis-server` or set " + EnvURL + "=redis://host:port/db"

// startTimeout bounds how long Start and Restart wait for PING to answer.
const startTimeout = 10 * time.Second

// Server is a Redis for one test.
type Server struct {
	// URL is the server's address as redis://host:port/db.
	URL string
	// Addr is the server's host:port.
	Addr string
	// Prefix is a key prefix unique to this test, such as
	// "vigiltest:3f9c2a71b0d4e5c6:". Tests put every key and channel they
	// use under it.
	Prefix string

	tb       testing.TB
	external bool   // URL came from EnvURL: Stop and Restart are refused
	bin      string // path of redis-server
	dir      string // working directory of the self-started server
	port     int

	mu   sync.Mutex
	proc *process // nil while stopped; guarded by mu
}

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	out  *lockedBuffer // its stdout and stderr, for failure messages
}

// Start returns a Redis for the test t: the one named by VIGIL_TEST_REDIS_URL
// if that is set, else a redis-server of its own, stopped when the test ends.
// It fails the test, saying how to fix it, when neither is possible.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{tb: t, Prefix: "vigiltest:" + randomHex(t) + ":"}

	if u := os.Getenv(EnvURL); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatalf("redistest: parsing %s=%q: %v", EnvURL, u, err)
		}
		s.URL, s.Addr, s.external = u, opt.Addr, true
		if err := waitPing(s.Addr, startTimeout); err != nil {
			t.Fatalf("redistest: Redis at %s=%q does not answer: %v", EnvURL, u, err)
		}
		return s
	}

	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(notFound)
	}
	s.bin, s.dir = bin, t.TempDir()

	// A free port can be taken by someone else between our probe and the
	// server's bind; try a few.
	var lastErr error
	for range 5 {
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("redistest: starting redis-server: %v", lastErr)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.URL = "redis://" + s.Addr + "/0"
	t.Cleanup(s.Stop)
	return s
}

// Client returns a new client of the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(s.URL)
	if err != nil {
		t.Fatalf("redistest: parsing %q: %v", s.URL, err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop stops a self-started server, for tests of a Redis outage; it does
// nothing if the server is already stopped. It fails the test on a server
// given by VIGIL_TEST_REDIS_URL, which it must not stop.
func (s *Server) Stop() {
	if s.external {
		s.tb.Helper()
		s.tb.Fatalf("redistest: outage tests need a self-started redis-server: unset %s and put redis-server in PATH", EnvURL)
	}
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Restart stops a self-started server if it is running and starts it again
// on the same port, with an empty data set, for tests of recovery from an
// outage. It fails the test on a server given by VIGIL_TEST_REDIS_URL.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.external {
		t.Fatalf("redistest: outage tests need a self-started redis-server: unset %s and put redis-server in PATH", EnvURL)
	}
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatalf("redistest: restarting redis-server on port %d: %v", s.port, err)
	}
}

// start runs redis-server on s.port and waits until it answers PING.
func (s *Server) start() error {
	out := &lockedBuffer{}
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
	)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), out: out}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited early: %s", out.String())
		default:
		}
		err := ping(addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("no answer to PING on %s after %s: %w; output: %s", addr, startTimeout, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// stop ends the process, politely first, and waits for it to exit.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitPing waits until the Redis at addr answers PING.
func waitPing(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ping(addr)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ping sends one inline PING. A server that requires a password answers
// with an error, which still shows it is up.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	switch {
	case len(line) > 0 && line[0] == '+', bytes.HasPrefix([]byte(line), []byte("-NOAUTH")):
		return nil
	default:
		return fmt.Errorf("unexpected answer to PING: %q", line)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomHex returns 16 random hex digits.
func randomHex(t testing.TB) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("redistest: reading random bytes: %v", err)
	}
	return hex.EncodeToString(b[:])
}

// lockedBuffer collects a process's output; the exec package writes to it
// from its own goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
