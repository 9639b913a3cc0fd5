package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest/csp"
	"github.com/vigil-soc/vigil/internal/natstest"
)

// runPublisher runs p until the test ends.
func runPublisher(t *testing.T, p *Publisher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func cspEvent(i int) event.Event {
	return event.Event{
		ID: "ev-" + strconv.Itoa(i), Time: time.Unix(1700000000, 0).UTC(), Source: event.SourceCSP,
		Dataset: "csp.violation", Action: "csp-violation", BodyBytes: -1,
		SourceIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 7)}),
		CSP:      &event.CSP{BlockedURI: "https://evil.example/" + strconv.Itoa(i), EffectiveDirective: "script-src-elem"},
	}
}

// storedIDs reads every event of the events stream: id → times stored,
// and the number of messages that carried them.
func storedIDs(t *testing.T, js jetstream.JetStream) (map[string]int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids, msgs := map[string]int{}, 0
	for pending := info.NumPending; pending > 0; pending-- {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		msgs++
		if n, _ := strconv.Atoi(m.Headers().Get(bus.HeaderCount)); n < 1 {
			t.Errorf("message %s: %s header %q", m.Subject(), bus.HeaderCount, m.Headers().Get(bus.HeaderCount))
		}
		if bad := bus.DecodeBatch(m.Data(), func(ev *event.Event) { ids[ev.ID]++ }); bad != nil {
			t.Fatalf("undecodable events: %v", bad)
		}
	}
	return ids, msgs
}

// TestPublisherGroupsRequests: concurrent requests are all stored, each
// event once, on its partition's subject, and acknowledged only then.
func TestPublisherGroupsRequests(t *testing.T) {
	js := natstest.Start(t, "test", true)
	m := NewMetrics(prometheus.NewRegistry())
	p := NewPublisher(js, 4, m, slog.New(slog.DiscardHandler))
	runPublisher(t, p)

	const requests = 300
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for i := range requests {
		wg.Go(func() {
			evs := []event.Event{cspEvent(2 * i), cspEvent(2*i + 1)}
			errs <- p.Publish(context.Background(), event.SourceCSP, evs)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ids, msgs := storedIDs(t, js)
	if len(ids) != 2*requests {
		t.Fatalf("%d distinct events stored, want %d", len(ids), 2*requests)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	if got := testutil.ToFloat64(m.Published.WithLabelValues(event.SourceCSP)); got != 2*requests {
		t.Errorf("published counter %v, want %d", got, 2*requests)
	}
	if got := testutil.ToFloat64(m.Batches.WithLabelValues(event.SourceCSP)); int(got) != msgs {
		t.Errorf("batches counter %v, stream holds %d messages", got, msgs)
	}
	t.Logf("%d events in %d messages", 2*requests, msgs)
}

// TestPublisherSlowStore: while JetStream cannot store (no stream), the
// request in flight gets ErrSlow after StoreTimeout, and so does at once
// every request made while it is stalled; the publisher keeps sending,
// and once the stream exists every event is stored exactly once and
// requests are answered normally again.
func TestPublisherSlowStore(t *testing.T) {
	js := natstest.Start(t, "test", false)
	m := NewMetrics(prometheus.NewRegistry())
	p := NewPublisher(js, 1, m, slog.New(slog.DiscardHandler))
	p.StoreTimeout = 300 * time.Millisecond
	runPublisher(t, p)

	start := time.Now()
	first := make(chan error, 1)
	go func() { first <- p.Publish(context.Background(), event.SourceCSP, []event.Event{cspEvent(1)}) }()
	time.Sleep(100 * time.Millisecond)
	// Queued behind the stuck group: it must not wait for its own context.
	if err := p.Publish(context.Background(), event.SourceCSP, []event.Event{cspEvent(2)}); !errors.Is(err, ErrSlow) {
		t.Fatalf("a request queued during the stall: %v, want ErrSlow", err)
	}
	if err := <-first; !errors.Is(err, ErrSlow) {
		t.Fatalf("Publish without a stream: %v, want ErrSlow", err)
	}
	if d := time.Since(start); d < p.StoreTimeout {
		t.Fatalf("ErrSlow after %v, before the %v timeout", d, p.StoreTimeout)
	}
	// Each request has a timer of its own; the group's may fire a moment
	// after theirs on a busy machine.
	for deadline := time.Now().Add(5 * time.Second); !p.Stalled() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !p.Stalled() || testutil.ToFloat64(m.Stalled) != 1 {
		t.Errorf("stalled: Stalled() %v, gauge %v, want true and 1", p.Stalled(), testutil.ToFloat64(m.Stalled))
	}
	// A request made while stalled is answered at once.
	t0 := time.Now()
	if err := p.Publish(context.Background(), event.SourceCSP, []event.Event{cspEvent(3)}); !errors.Is(err, ErrSlow) {
		t.Fatalf("a request made during the stall: %v, want ErrSlow", err)
	}
	if d := time.Since(t0); d > p.StoreTimeout/2 {
		t.Errorf("a request made during the stall waited %v", d)
	}
	natstest.EnsureStreams(t, js)
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(m.Published.WithLabelValues(event.SourceCSP)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%v events stored after the stream was created, want 3", testutil.ToFloat64(m.Published.WithLabelValues(event.SourceCSP)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Flowing again: answered normally, and nothing stored twice.
	if err := p.Publish(context.Background(), event.SourceCSP, []event.Event{cspEvent(4)}); err != nil {
		t.Fatalf("after the stall: %v", err)
	}
	if p.Stalled() || testutil.ToFloat64(m.Stalled) != 0 {
		t.Errorf("flowing again: Stalled() %v, gauge %v, want false and 0", p.Stalled(), testutil.ToFloat64(m.Stalled))
	}
	ids, _ := storedIDs(t, js)
	if len(ids) != 4 || ids["ev-1"] != 1 || ids["ev-2"] != 1 || ids["ev-3"] != 1 || ids["ev-4"] != 1 {
		t.Fatalf("stored %v, want ev-1..ev-4 once each", ids)
	}
}

// lateAcks is a real JetStream whose acknowledgements of asynchronous
// publishes reach the publisher delay late (a slow store), the message
// being stored at once.
type lateAcks struct {
	jetstream.JetStream
	delay time.Duration
}

func (j lateAcks) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	f, err := j.JetStream.PublishMsgAsync(m, opts...)
	if err != nil {
		return nil, err
	}
	late := &lateAck{PubAckFuture: f, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	go func() {
		select {
		case a := <-f.Ok():
			time.Sleep(j.delay)
			late.ok <- a
		case e := <-f.Err():
			time.Sleep(j.delay)
			late.err <- e
		}
	}()
	return late, nil
}

type lateAck struct {
	jetstream.PubAckFuture
	ok  chan *jetstream.PubAck
	err chan error
}

func (a *lateAck) Ok() <-chan *jetstream.PubAck { return a.ok }
func (a *lateAck) Err() <-chan error            { return a.err }

// TestPublishWaitsAtMostStoreTimeout: a request queued behind a group that
// is stored just in time, whose own group is slow too, gets ErrSlow
// StoreTimeout after it was queued, not up to twice that (an HTTP client
// would meet the listener's write timeout first); its events are stored
// all the same.
func TestPublishWaitsAtMostStoreTimeout(t *testing.T) {
	js := natstest.Start(t, "test", true)
	m := NewMetrics(prometheus.NewRegistry())
	p := NewPublisher(lateAcks{js, 700 * time.Millisecond}, 1, m, slog.New(slog.DiscardHandler))
	p.StoreTimeout = time.Second
	runPublisher(t, p)

	first := make(chan error, 1)
	go func() { first <- p.Publish(context.Background(), event.SourceCSP, []event.Event{cspEvent(1)}) }()
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	err := p.Publish(context.Background(), event.SourceCSP, []event.Event{cspEvent(2)})
	waited := time.Since(t0)
	if !errors.Is(err, ErrSlow) || waited < p.StoreTimeout || waited > p.StoreTimeout+300*time.Millisecond {
		t.Fatalf("queued behind a slow group, its own as slow: %v after %v, want ErrSlow after %v", err, waited, p.StoreTimeout)
	}
	if err := <-first; err != nil {
		t.Fatalf("the first group, stored in time: %v", err)
	}
	waitStored(t, m, 2)
	if ids, _ := storedIDs(t, js); len(ids) != 2 || ids["ev-1"] != 1 || ids["ev-2"] != 1 {
		t.Fatalf("stored %v, want ev-1 and ev-2 once each", ids)
	}
}

// waitStored waits until n CSP events are counted as published.
func waitStored(t *testing.T, m *Metrics, n float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(m.Published.WithLabelValues(event.SourceCSP)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%v events published, want %v", testutil.ToFloat64(m.Published.WithLabelValues(event.SourceCSP)), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPublisherClientGone: a request whose context ends returns its error
// without waiting, and its events are still stored.
func TestPublisherClientGone(t *testing.T) {
	js := natstest.Start(t, "test", false)
	m := NewMetrics(prometheus.NewRegistry())
	p := NewPublisher(js, 1, m, slog.New(slog.DiscardHandler))
	runPublisher(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Publish(ctx, event.SourceCSP, []event.Event{cspEvent(3)}); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNotQueued) {
		t.Fatalf("Publish with an ended context: %v, want the deadline, queued", err)
	}
	natstest.EnsureStreams(t, js)
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(m.Published.WithLabelValues(event.SourceCSP)) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the event of the gone client was not stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPublisherDrains: events queued when Run's context ends are still
// stored before Run returns; after that, Publish and Submit fail at once
// with ErrStopped instead of waiting.
func TestPublisherDrains(t *testing.T) {
	js := natstest.Start(t, "test", true)
	m := NewMetrics(prometheus.NewRegistry())
	p := NewPublisher(js, 1, m, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	const n = 500
	var mu sync.Mutex
	var failed []error
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		if err := p.Submit(context.Background(), event.SourceCSP, []event.Event{cspEvent(i)}, func(err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d events queued before the stop failed: %v", len(failed), n, failed[0])
	}
	if ids, _ := storedIDs(t, js); len(ids) != n {
		t.Fatalf("stored %d events, want the %d queued", len(ids), n)
	}
	t0 := time.Now()
	if err := p.Publish(context.Background(), event.SourceCSP, []event.Event{cspEvent(n)}); !errors.Is(err, ErrStopped) || !errors.Is(err, ErrNotQueued) {
		t.Errorf("Publish after Run returned: %v, want ErrStopped, not queued", err)
	}
	if err := p.Submit(context.Background(), event.SourceCSP, []event.Event{cspEvent(n)}, func(error) {}); !errors.Is(err, ErrStopped) {
		t.Errorf("Submit after Run returned: %v, want ErrStopped", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Publish and Submit after Run returned took %v", d)
	}
}

// TestPublisherDrainTimeout: when JetStream does not store what is queued,
// Run gives up DrainTimeout after its context ends, and the waiting
// request gets ErrStopped.
func TestPublisherDrainTimeout(t *testing.T) {
	js := natstest.Start(t, "test", false) // no stream: nothing is stored
	p := NewPublisher(js, 1, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	p.DrainTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	res := make(chan error, 1)
	go func() { res <- p.Publish(context.Background(), event.SourceCSP, []event.Event{cspEvent(1)}) }()
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its drain timeout")
	}
	if d := time.Since(t0); d < p.DrainTimeout {
		t.Errorf("Run returned %v after its context ended, before the %v drain timeout", d, p.DrainTimeout)
	}
	if err := <-res; !errors.Is(err, ErrStopped) {
		t.Fatalf("the request waiting: %v, want ErrStopped", err)
	}
}

// TestPublisherNotQueued: a Publish that gives up while the queue is full
// says its events were not queued, and they are not stored.
func TestPublisherNotQueued(t *testing.T) {
	js := natstest.Start(t, "test", true)
	m := NewMetrics(prometheus.NewRegistry())
	p := NewPublisher(js, 1, m, slog.New(slog.DiscardHandler))
	n := cap(p.in)
	for i := range n { // Run is not running: the queue fills
		if err := p.Submit(context.Background(), event.SourceCSP, []event.Event{cspEvent(i)}, func(error) {}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	late := cspEvent(n)
	err := p.Publish(ctx, event.SourceCSP, []event.Event{late})
	if !errors.Is(err, ErrNotQueued) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish into a full queue: %v, want ErrNotQueued and the deadline", err)
	}
	runPublisher(t, p)
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(m.Published.WithLabelValues(event.SourceCSP)) < float64(n) {
		if time.Now().After(deadline) {
			t.Fatal("the queued events were not stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ids, _ := storedIDs(t, js); len(ids) != n || ids[late.ID] != 0 {
		t.Fatalf("stored %d events (the one not queued %d times), want %d and 0", len(ids), ids[late.ID], n)
	}
}

// TestPublishOnce: the events of a keyed request go in batches of their
// own, even in a group shared with other requests, so the same request sent
// again under the same key (in another group) is dropped by the stream:
// each event stored once, the re-sent batches counted as duplicates, not
// as published. Without a key, or under another key, it is stored again.
func TestPublishOnce(t *testing.T) {
	js := natstest.Start(t, "test", true)
	m := NewMetrics(prometheus.NewRegistry())
	p := NewPublisher(js, 4, m, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	// Two events per partition subject, more than one of them: the keyed
	// request's batches are one per subject.
	var keyed []event.Event
	for i := range 14 {
		keyed = append(keyed, cspEvent(100+i))
	}
	subjects := map[string]bool{}
	for i := range keyed {
		subjects[p.subject(event.SourceCSP, bus.Partition([]byte(keyed[i].SourceIP.String()), 4))] = true
	}
	if len(subjects) < 2 {
		t.Fatalf("the keyed request spans %d subjects, want several", len(subjects))
	}
	// One group: an unkeyed request on each side of the keyed one.
	var st groupState
	group := []*request{
		p.encode(event.SourceCSP, []event.Event{cspEvent(1), cspEvent(2)}, nil, nil),
		p.encode(event.SourceCSP, keyed, nil, nil),
		p.encode(event.SourceCSP, []event.Event{cspEvent(3)}, nil, nil),
	}
	group[1].key = "k1"
	if err := p.publishGroup(ctx, group, &st); err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	if err := p.PublishOnce(ctx, "k1", event.SourceCSP, keyed); err != nil {
		t.Fatal(err)
	}
	ids, _ := storedIDs(t, js)
	for _, ev := range append(keyed, cspEvent(1), cspEvent(2), cspEvent(3)) {
		if ids[ev.ID] != 1 {
			t.Errorf("event %s stored %d times, want once", ev.ID, ids[ev.ID])
		}
	}
	if got := testutil.ToFloat64(m.Duplicates.WithLabelValues(event.SourceCSP)); int(got) != len(subjects) {
		t.Errorf("duplicate batches %v, want %d (one per subject of the keyed request)", got, len(subjects))
	}
	if got := testutil.ToFloat64(m.Published.WithLabelValues(event.SourceCSP)); got != 17 {
		t.Errorf("published counter %v, want 17 (the duplicates not counted)", got)
	}

	if err := p.PublishOnce(ctx, "k2", event.SourceCSP, keyed[:1]); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, event.SourceCSP, keyed[:1]); err != nil {
		t.Fatal(err)
	}
	if ids, _ := storedIDs(t, js); ids[keyed[0].ID] != 3 {
		t.Errorf("event %s stored %d times, want 3 (under k1, under k2, without a key)", keyed[0].ID, ids[keyed[0].ID])
	}
}

// BenchmarkPublish is the durable path of a report without HTTP: N
// concurrent callers each Publish one CSP event of the size a browser's
// report makes (~900 bytes encoded) and wait until JetStream (embedded, file
// store) has it. ns/op is wall clock per event; cpu-us/op is the process's
// CPU time (user + system, every goroutine: the publisher, NATS, the store)
// per event; events/msg is the mean group size. The callers=N runs show
// what group commit saves: the more callers wait at once, the more events
// share a JetStream message and its fixed cost.
//
//	go test -run '^$' -bench Publish -benchmem ./ingest
func BenchmarkPublish(b *testing.B) {
	// The report wrk sends in bench/cspload, normalised as the endpoint does.
	body := []byte(`{"csp-report":{"document-uri":"https://shop.example/checkout?step=1","referrer":"",` +
		`"violated-directive":"script-src-elem","effective-directive":"script-src-elem",` +
		`"original-policy":"default-src 'self'; script-src 'self'; report-uri https://vigil.example/csp-report",` +
		`"disposition":"enforce","blocked-uri":"https://evil.example/x1-2.js","status-code":200,"script-sample":""}}`)
	res, err := csp.ParseLegacy(body, csp.Meta{
		ClientIP: netip.MustParseAddr("127.0.0.1"), Received: time.Unix(1700000000, 0),
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	}, nil)
	if err != nil || len(res.Events) != 1 {
		b.Fatal(err, len(res.Events))
	}
	ev := res.Events[0]
	for _, callers := range []int{8, 64, 256} {
		b.Run("callers="+strconv.Itoa(callers), func(b *testing.B) {
			js := natstest.Start(b, "bench", true)
			m := NewMetrics(prometheus.NewRegistry())
			p := NewPublisher(js, 8, m, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = p.Run(ctx) }()
			defer func() { cancel(); <-done }()

			batches := m.Batches.WithLabelValues(event.SourceCSP)
			before := testutil.ToFloat64(batches)
			b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				evs := []event.Event{ev}
				for pb.Next() {
					if err := p.Publish(context.Background(), event.SourceCSP, evs); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-us/op")
			if n := testutil.ToFloat64(batches) - before; n > 0 {
				b.ReportMetric(float64(b.N)/n, "events/msg")
			}
		})
	}
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
