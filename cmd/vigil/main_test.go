package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// TestMain lets the test binary act as vigil itself when re-executed with
// VIGIL_TEST_MAIN=1, so tests can run and kill real vigil processes.
func TestMain(m *testing.M) {
	if os.Getenv("VIGIL_TEST_MAIN") == "1" {
		os.Exit(run(context.Background(), os.Args[1:]))
	}
	os.Exit(m.Run())
}

func vigilCmd(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "VIGIL_TEST_MAIN=1")
	if t != nil {
		cmd.Stderr = &testWriter{t: t}
	}
	return cmd
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Logf("vigil: %s", strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestKilledMidStreamLosesAndDuplicatesNothing kills vigil with SIGKILL while
// lines are being appended, starts it again, and checks every line reached
// the bus exactly once.
func TestKilledMidStreamLosesAndDuplicatesNothing(t *testing.T) {
	rs := redistest.Start(t)
	dir, logs := t.TempDir(), t.TempDir()
	port := freePort(t)
	args := []string{"run", "--redis", rs.URL, "--redis-prefix", rs.Prefix, "--data-dir", dir,
		"--access-log", filepath.Join(logs, "*.log"), "--admin", "127.0.0.1:0", "--listen", "127.0.0.1:0",
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "debug"}

	logFile := filepath.Join(logs, "access.log")
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const total, batch = 60000, 500
	now := time.Now().UTC().Format("02/Jan/2006:15:04:05 -0700")
	written := 0
	write := func(n int) {
		var b strings.Builder
		for i := written; i < written+n; i++ {
			fmt.Fprintf(&b, "198.51.100.%d - - [%s] \"GET /page/%d HTTP/1.1\" 200 512 \"-\" \"test\"\n", i%200+1, now, i)
		}
		if _, err := f.WriteString(b.String()); err != nil {
			t.Fatal(err)
		}
		written += n
	}

	first := vigilCmd(t, args...)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	for written < total/2 {
		write(batch)
		time.Sleep(5 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	second := vigilCmd(t, args...)
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
	}()
	for written < total {
		write(batch)
		time.Sleep(time.Millisecond)
	}

	var nc *nats.Conn
	deadline := time.Now().Add(30 * time.Second)
	for nc == nil {
		if nc, err = nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port)); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("connecting to vigil's NATS: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	seen := map[string]int{}
	for time.Now().Before(deadline) {
		clear(seen)
		stream, err := js.Stream(ctx, bus.StreamEvents)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		info, _ := stream.Info(ctx)
		oc, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for range info.State.Msgs {
			m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			bus.DecodeBatch(m.Data(), func(ev *event.Event) { seen[ev.Path]++ })
		}
		if len(seen) == total {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(seen) != total {
		t.Fatalf("%d distinct lines on the bus, want %d", len(seen), total)
	}
	for p, n := range seen {
		if n != 1 {
			t.Errorf("%s published %d times", p, n)
		}
	}
}
