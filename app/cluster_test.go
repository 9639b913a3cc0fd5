package app

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/vigil-soc/vigil/internal/redistest"
)

// natsCluster is three NATS servers with JetStream clustered over routes on
// loopback, as deploy/kubernetes/vigil-split.yaml runs them.
type natsCluster struct {
	nodes []*natsServer
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startNATSCluster(t *testing.T) *natsCluster {
	t.Helper()
	const n = 3
	clusterPorts := make([]int, n)
	for i := range clusterPorts {
		clusterPorts[i] = freePort(t)
	}
	var routes []string
	for _, p := range clusterPorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	c := &natsCluster{}
	for i := range n {
		node := &natsServer{opts: &server.Options{
			ServerName: fmt.Sprintf("nats-%d", i),
			Host:       "127.0.0.1",
			Port:       freePort(t),
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "vigil", Host: "127.0.0.1", Port: clusterPorts[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}}
		c.nodes = append(c.nodes, node)
	}
	for _, node := range c.nodes {
		srv, err := server.NewServer(node.opts)
		if err != nil {
			t.Fatal(err)
		}
		go srv.Start()
		node.srv = srv
		t.Cleanup(node.stop)
	}
	for _, node := range c.nodes {
		if !node.srv.ReadyForConnections(30 * time.Second) {
			t.Fatalf("%s not ready", node.opts.ServerName)
		}
	}
	waitFor(t, 30*time.Second, "a JetStream meta leader", func() bool {
		for _, node := range c.nodes {
			if node.srv.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return c
}

// urls is the client URL list of every node.
func (c *natsCluster) urls() string {
	var u []string
	for _, node := range c.nodes {
		u = append(u, node.url())
	}
	return strings.Join(u, ",")
}

// TestNATSClusterLosesANode: with stream_replicas 3 on a three-node NATS
// cluster, one node stopped mid-stream (the stream's leader) costs nothing:
// every line reaches the stream once and every scanner is banned.
func TestNATSClusterLosesANode(t *testing.T) {
	c := startNATSCluster(t)
	h := newHarness(t, redistest.Start(t), t.TempDir())
	h.cfg.NATS = c.urls()
	h.cfg.StreamReplicas = 3
	h.start()

	now := time.Now().UTC()
	h.appendLines("access.log", scanLines("203.0.113.101", now, 50))
	waitFor(t, 30*time.Second, "ban of 203.0.113.101", func() bool { return h.banTTL("203.0.113.101") > 0 })

	// Stop the node that leads VIGIL_EVENTS.
	var leader *natsServer
	for _, node := range c.nodes {
		if node.srv.JetStreamIsStreamLeader("$G", "VIGIL_EVENTS") {
			leader = node
		}
	}
	if leader == nil {
		t.Fatal("no leader for VIGIL_EVENTS")
	}
	var alive *natsServer
	for _, node := range c.nodes {
		if node != leader {
			alive = node
		}
	}
	for i := range 4 {
		ip := fmt.Sprintf("203.0.113.%d", 110+i)
		h.appendLines("access.log", scanLines(ip, now, 50))
		if i == 1 {
			leader.stop()
		}
	}
	for i := range 4 {
		ip := fmt.Sprintf("203.0.113.%d", 110+i)
		waitFor(t, 60*time.Second, "ban of "+ip+" after a node was lost", func() bool { return h.banTTL(ip) > 0 })
	}
	waitStoredOnce(t, alive.url(), 250)
}
