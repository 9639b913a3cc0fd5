package index

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/internal/estest"
	"github.com/vigil-soc/vigil/internal/natstest"
)

// TestMain shares one Elasticsearch node between the package's tests and
// stops it at the end, then looks for leaked goroutines.
func TestMain(m *testing.M) {
	code := estest.Main(m)
	if code == 0 {
		if err := goleak.Find(
			// Idle keep-alive connections of the Elasticsearch client's
			// transport, which has no Close.
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// env is one test's world: the shared Elasticsearch under a namespace of
// the test's own, and an embedded JetStream with Vigil's streams.
type env struct {
	es  *estest.Server
	ns  string
	js  jetstream.JetStream
	reg *prometheus.Registry
	log *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	es := estest.Start(t)
	js := natstest.Start(t, "index-test", true)
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	return &env{
		es: es, ns: es.Namespace(t), js: js, reg: prometheus.NewRegistry(),
		log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("test", t.Name()),
	}
}

// config is a configuration for the test: its namespace, short delays.
func (e *env) config() Config {
	return Config{
		Addresses:     []string{e.es.URL},
		Namespace:     e.ns,
		FlushInterval: 50 * time.Millisecond,
		RetryDelay:    100 * time.Millisecond,
		RetryMaxDelay: time.Second,
		Retries:       1,
		RolloverCheck: -1,
	}
}

// run starts an indexer with cfg and stops it when the test ends (or when
// the returned function is called).
func (e *env) run(t *testing.T, cfg Config) (*Indexer, func()) {
	t.Helper()
	ix, err := New(cfg, e.js, e.reg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return ix, stop
}

// events returns n access events with distinct ids under prefix.
func events(prefix string, n int, at time.Time) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.Event{
			ID:          prefix + "-" + strconv.Itoa(i),
			Time:        at.Add(time.Duration(i) * time.Millisecond),
			Source:      event.SourceAccess,
			Dataset:     "nginx.access",
			Outcome:     "failure",
			SourceIP:    netip.MustParseAddr("203.0.113." + strconv.Itoa(1+i%200)),
			Method:      "GET",
			Target:      "/wp-admin/" + strconv.Itoa(i) + ".php?x=1",
			Path:        "/wp-admin/" + strconv.Itoa(i) + ".php",
			Query:       "x=1",
			HTTPVersion: "1.1",
			Status:      404,
			BodyBytes:   153,
			UserAgent:   "gobuster/3.6",
		}
	}
	return out
}

// publishEvents publishes evs as one batch of source with message id id.
func (e *env) publishEvents(t *testing.T, source, id string, evs []event.Event) {
	t.Helper()
	b := bus.Batch{Subject: bus.EventSubject(source, 0)}
	for i := range evs {
		b.Add(&evs[i])
	}
	e.publish(t, b.Msg(id))
}

// publishRaw publishes an NDJSON body as an events batch of source.
func (e *env) publishRaw(t *testing.T, source, id, body string) {
	t.Helper()
	m := nats.NewMsg(bus.EventSubject(source, 0))
	m.Data = []byte(body)
	m.Header.Set(nats.MsgIdHdr, id)
	e.publish(t, m)
}

// publishJSON publishes v as JSON on subject with message id id.
func (e *env) publishJSON(t *testing.T, subject, id string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(nats.MsgIdHdr, id)
	e.publish(t, m)
}

func (e *env) publish(t *testing.T, m *nats.Msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		t.Fatalf("publishing to %s: %v", m.Subject, err)
	}
}

// count returns the number of documents searchable in target, -1 if the
// target does not answer.
func (e *env) count(t *testing.T, target string) int {
	t.Helper()
	e.es.Request(t, "POST", "/"+target+"/_refresh", nil)
	status, body := e.es.Request(t, "GET", "/"+target+"/_count", nil)
	if status != 200 {
		return -1
	}
	var r struct{ Count int }
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("count of %s: %v: %s", target, err, body)
	}
	return r.Count
}

// waitCount waits until target holds want documents and fails the test if
// it does not within timeout, or holds more.
func (e *env) waitCount(t *testing.T, target string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := e.count(t, target)
		if n == want {
			return
		}
		if n > want {
			t.Fatalf("%s holds %d documents, want %d", target, n, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d documents after %s, want %d", target, n, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// docsMetric returns vigil_index_documents_total{kind,result}.
func (e *env) docsMetric(kind, result string) float64 {
	return metricValue(e.reg, "vigil_index_documents_total", map[string]string{"kind": kind, "result": result})
}

// metricValue returns the value of the counter name with labels in reg, 0
// if there is none.
func metricValue(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
		}
	}
	return 0
}
