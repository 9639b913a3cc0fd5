// Package natstest gives tests a real NATS JetStream: the server `vigil run`
// embeds, in process, with its store in the test's temporary directory. It
// is for tests only: nothing outside _test.go files may import it.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-soc/vigil/bus"
)

// Start starts an embedded JetStream server for the test, connects to it
// as name and returns the JetStream context; both end with the test.
// Vigil's streams are created when streams is true.
func Start(t testing.TB, name string, streams bool) jetstream.JetStream {
	t.Helper()
	emb, err := bus.StartEmbedded(bus.EmbeddedConfig{StoreDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	nc, err := emb.Connect(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if streams {
		EnsureStreams(t, js)
	}
	return js
}

// EnsureStreams creates Vigil's streams (or checks them).
func EnsureStreams(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
}
