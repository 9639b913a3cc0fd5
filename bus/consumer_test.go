package bus

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func testJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	emb, err := StartEmbedded(EmbeddedConfig{StoreDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	nc, err := emb.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := EnsureStreams(ctx, js, StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	return js
}

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
		if _, err := js.Publish(context.Background(), AlertSubject("r"), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDurableOutlivesItsDeletion: a consumer deleted under a running Durable
// is created again after the last message handed out (nothing twice,
// nothing skipped); a stream deleted and created again is read from its
// start.
func TestDurableOutlivesItsDeletion(t *testing.T) {
	js := testJetStream(t)
	var r received
	var opens []bool
	var mu sync.Mutex
	d := &Durable{
		JS: js, Stream: StreamAlerts, Batch: 4,
		Config: jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy},
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Opened: func(_ context.Context, _ *jetstream.ConsumerInfo, newStream bool) {
			mu.Lock()
			opens = append(opens, newStream)
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil, r.add) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	publish(t, js, 0, 10)
	r.wait(t, 10)
	if err := js.DeleteConsumer(context.Background(), StreamAlerts, "test"); err != nil {
		t.Fatal(err)
	}
	publish(t, js, 10, 20)
	got := r.wait(t, 20)
	time.Sleep(200 * time.Millisecond) // would a duplicate arrive?
	got = r.wait(t, 20)
	if len(got) != 20 {
		t.Fatalf("after the consumer was deleted: %d messages, want 20: %v", len(got), got)
	}
	for i, s := range got {
		if s != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: %v", i, s, got)
		}
	}

	if err := js.DeleteStream(context.Background(), StreamAlerts); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStreams(context.Background(), js, StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	publish(t, js, 100, 103)
	got = r.wait(t, 23)
	if want := []string{"100", "101", "102"}; len(got) != 23 || got[20] != want[0] || got[22] != want[2] {
		t.Errorf("after the stream was created anew: %v", got[20:])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(opens) != 3 || opens[0] || opens[1] || !opens[2] {
		t.Errorf("Opened calls (newStream) = %v, want [false false true]", opens)
	}
}

// TestKeepStreamsCreatesMissingStreams: a deleted stream is back within
// the check interval.
func TestKeepStreamsCreatesMissingStreams(t *testing.T) {
	js := testJetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- KeepStreams(ctx, js, StreamsConfig{}, 50*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()
	if err := js.DeleteStream(context.Background(), StreamEvents); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := js.Stream(context.Background(), StreamEvents); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("VIGIL_EVENTS was not created again")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
