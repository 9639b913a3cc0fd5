package app

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// natsServer is a NATS server with JetStream on a loopback TCP port, run
// apart from Vigil the way an operator's server is: Vigil reaches it only
// through --nats.
type natsServer struct {
	opts *server.Options
	srv  *server.Server
}

func startNATS(t *testing.T) *natsServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	n := &natsServer{opts: &server.Options{
		ServerName: "external",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoSigs:     true,
		NoLog:      true,
	}}
	n.start(t)
	t.Cleanup(n.stop)
	return n
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

func (n *natsServer) start(t *testing.T) {
	t.Helper()
	srv, err := server.NewServer(n.opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatalf("NATS on %s not ready after 30s", n.url())
	}
	n.srv = srv
}

func (n *natsServer) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// eventTargets counts the events on the external server's stream by URL
// target.
func eventTargets(t *testing.T, url string) map[string]int {
	t.Helper()
	seen, err := tryEventTargets(url)
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

func tryEventTargets(url string) (map[string]int, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	msgs, err := tryReadStream(nc, bus.StreamEvents)
	if err != nil {
		return nil, err
	}
	seen := map[string]int{}
	for _, m := range msgs {
		bus.DecodeBatch(m.Data(), func(ev *event.Event) { seen[ev.Target]++ })
	}
	return seen, nil
}

// waitStoredOnce waits until the stream of the server at url holds lines
// distinct targets, and checks each is stored once. A read that fails (a
// cluster still electing a leader) is tried again.
func waitStoredOnce(t *testing.T, url string, lines int) {
	t.Helper()
	seen := map[string]int{}
	waitFor(t, 30*time.Second, "every line on the stream", func() bool {
		s, err := tryEventTargets(url)
		if err != nil {
			t.Logf("reading the stream, will try again: %v", err)
			return false
		}
		seen = s
		return len(seen) == lines
	})
	for target, n := range seen {
		if n != 1 {
			t.Errorf("%s stored %d times", target, n)
		}
	}
}

// externalNATSHarness runs Vigil against a NATS server of its own, reached
// through --nats.
func externalNATSHarness(t *testing.T) (*harness, *natsServer) {
	ns := startNATS(t)
	h := newHarness(t, redistest.Start(t), t.TempDir())
	h.cfg.NATS = ns.url()
	h.start()
	return h, ns
}

// TestExternalNATSOutage: with an external NATS server (--nats) stopped in
// the middle of a stream and started again, every line reaches the stream
// exactly once and every scanner is banned, including those whose lines
// were written while NATS was down.
func TestExternalNATSOutage(t *testing.T) {
	h, ns := externalNATSHarness(t)

	now := time.Now().UTC()
	before := []string{"203.0.113.31", "203.0.113.32"}
	during := []string{"203.0.113.33", "203.0.113.34"}
	for _, ip := range before {
		h.appendLines("access.log", scanLines(ip, now, 50))
	}
	for _, ip := range before {
		waitFor(t, 20*time.Second, "ban of "+ip, func() bool { return h.banTTL(ip) > 0 })
	}

	ns.stop()
	for _, ip := range during {
		h.appendLines("access.log", scanLines(ip, now, 50))
	}
	time.Sleep(2 * time.Second) // collectors and consumers fail and retry meanwhile
	ns.start(t)

	for _, ip := range during {
		waitFor(t, 60*time.Second, "ban of "+ip+" after NATS came back", func() bool { return h.banTTL(ip) > 0 })
	}
	waitStoredOnce(t, ns.url(), 200)
}

// TestExternalNATSLosesItsStore: a NATS server that comes back without its
// store (a pod without a volume) has no streams and no consumers; Vigil
// creates them again and goes on banning.
func TestExternalNATSLosesItsStore(t *testing.T) {
	h, ns := externalNATSHarness(t)

	now := time.Now().UTC()
	h.appendLines("access.log", scanLines("203.0.113.41", now, 50))
	waitFor(t, 20*time.Second, "ban of 203.0.113.41", func() bool { return h.banTTL("203.0.113.41") > 0 })

	ns.stop()
	ns.opts.StoreDir = t.TempDir()
	ns.start(t)
	h.appendLines("access.log", scanLines("203.0.113.42", now, 50))
	waitFor(t, 60*time.Second, "ban of 203.0.113.42 after NATS lost its store", func() bool { return h.banTTL("203.0.113.42") > 0 })
}
