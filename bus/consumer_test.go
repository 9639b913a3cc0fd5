package bus_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/internal/natstest"
)

// received collects what a Durable hands out.
type received struct {
	mu   sync.Mutex
	data []string
}

func (r *received) add(m jetstream.Msg) {
	r.mu.Lock()
	r.data = append(r.data, string(m.Data()))
	r.mu.Unlock()
	_ = m.Ack()
}

func (r *received) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		got := append([]string(nil), r.data...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d messages, want %d: %v", len(got), n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func publish(t *testing.T, js jetstream.JetStream, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := js.Publish(context.Background(), bus.AlertSubject("r"), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// runDurable runs d until the test ends.
func runDurable(t *testing.T, d *bus.Durable, handle func(jetstream.Msg)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil, handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitAckFloor waits until the server's ack floor of consumer reaches seq.
func waitAckFloor(t *testing.T, js jetstream.JetStream, consumer string, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := js.Consumer(context.Background(), bus.StreamAlerts, consumer)
		if err == nil && c.CachedInfo().AckFloor.Stream >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ack floor of %s did not reach %d", consumer, seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testDurable(js jetstream.JetStream, opened func(bool)) *bus.Durable {
	return &bus.Durable{
		JS: js, Stream: bus.StreamAlerts, Batch: 4,
		Config: jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy},
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Opened: func(_ context.Context, _ *jetstream.ConsumerInfo, newStream bool) {
			if opened != nil {
				opened(newStream)
			}
		},
	}
}

// TestDurableOutlivesItsDeletion: a consumer deleted under a running
// Durable is created again and every message still arrives (at least
// once: only messages from before the deletion may come twice); a stream
// deleted and created again is read from its start.
func TestDurableOutlivesItsDeletion(t *testing.T) {
	js := natstest.Start(t, "test", true)
	var r received
	var opens []bool
	var mu sync.Mutex
	runDurable(t, testDurable(js, func(newStream bool) {
		mu.Lock()
		opens = append(opens, newStream)
		mu.Unlock()
	}), r.add)

	publish(t, js, 0, 10)
	r.wait(t, 10)
	if err := js.DeleteConsumer(context.Background(), bus.StreamAlerts, "test"); err != nil {
		t.Fatal(err)
	}
	publish(t, js, 10, 20)
	seen := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < 20 && time.Now().Before(deadline) {
		clear(seen)
		for _, s := range r.wait(t, 10) {
			seen[s]++
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 20 {
		n := seen[strconv.Itoa(i)]
		if n == 0 || (i >= 10 && n > 1) {
			t.Errorf("message %d arrived %d times", i, n)
		}
	}

	if err := js.DeleteStream(context.Background(), bus.StreamAlerts); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(context.Background(), js, bus.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	before := len(r.wait(t, 20))
	publish(t, js, 100, 103)
	got := r.wait(t, before+3)
	if fresh := got[before:]; len(fresh) != 3 || fresh[0] != "100" || fresh[1] != "101" || fresh[2] != "102" {
		t.Errorf("after the stream was created anew: %v", fresh)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(opens) != 3 || opens[0] || opens[1] || !opens[2] {
		t.Errorf("Opened calls (newStream) = %v, want [false false true]", opens)
	}
}

// TestDurableRecreatedAfterARestartStartsAtItsFloor: a Durable that opened
// an existing consumer (a restarted Vigil) and sees it deleted before any
// new message re-creates it after the acknowledged messages, not at the
// start of the stream.
func TestDurableRecreatedAfterARestartStartsAtItsFloor(t *testing.T) {
	js := natstest.Start(t, "test", true)
	publish(t, js, 0, 10)
	var first received
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- testDurable(js, nil).Run(ctx, nil, first.add) }()
	first.wait(t, 10)
	waitAckFloor(t, js, "test", 10)
	cancel()
	<-done

	var r received
	opened := make(chan bool, 4)
	runDurable(t, testDurable(js, func(bool) { opened <- true }), r.add)
	<-opened
	if err := js.DeleteConsumer(context.Background(), bus.StreamAlerts, "test"); err != nil {
		t.Fatal(err)
	}
	<-opened
	publish(t, js, 10, 12)
	if got := r.wait(t, 2); len(got) != 2 || got[0] != "10" || got[1] != "11" {
		t.Errorf("after the re-creation: %v, want [10 11] (the stream replayed from its start?)", got)
	}
}

// TestKeepStreamsCreatesMissingStreams: a deleted stream is back within
// the check interval.
func TestKeepStreamsCreatesMissingStreams(t *testing.T) {
	js := natstest.Start(t, "test", true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- bus.KeepStreams(ctx, js, bus.StreamsConfig{}, 50*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()
	if err := js.DeleteStream(context.Background(), bus.StreamEvents); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := js.Stream(context.Background(), bus.StreamEvents); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("VIGIL_EVENTS was not created again")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDurablePinnedRetriedAfterFailure: when Pinned fails, the message it
// came with is not handled but given back, and Pinned runs again before
// the next message; the handler sees every message, none before a
// successful Pinned.
func TestDurablePinnedRetriedAfterFailure(t *testing.T) {
	js := natstest.Start(t, "test", true)
	d := testDurable(js, nil)
	d.Group = "g"
	d.Config.PriorityGroups = []string{"g"}
	d.Config.PriorityPolicy = jetstream.PriorityPolicyPinned
	d.Config.PinnedTTL = 30 * time.Second
	var (
		mu            sync.Mutex
		calls, failed int
		ok            bool
		early         []string
	)
	d.Pinned = func(context.Context, jetstream.Consumer) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			failed++
			return context.DeadlineExceeded
		}
		ok = true
		return nil
	}
	var r received
	runDurable(t, d, func(m jetstream.Msg) {
		mu.Lock()
		if !ok {
			early = append(early, string(m.Data()))
		}
		mu.Unlock()
		r.add(m)
	})
	publish(t, js, 0, 5)
	got := r.wait(t, 5)
	mu.Lock()
	defer mu.Unlock()
	if failed != 2 || !ok || len(early) > 0 {
		t.Errorf("Pinned failed %d times, succeeded %v; handled before it succeeded: %v", failed, ok, early)
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	if len(seen) != 5 {
		t.Errorf("handled %v, want 0..4", got)
	}
}
