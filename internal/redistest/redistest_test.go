package redistest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-soc/vigil/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStartGivesAWorkingServer(t *testing.T) {
	s := redistest.Start(t)
	if !strings.HasPrefix(s.Prefix, "vigiltest:") || !strings.HasSuffix(s.Prefix, ":") {
		t.Errorf("Prefix = %q, want vigiltest:<random>:", s.Prefix)
	}
	if !strings.HasPrefix(s.URL, "redis://") || s.Addr == "" {
		t.Errorf("URL = %q, Addr = %q", s.URL, s.Addr)
	}
	ctx := context.Background()
	c := s.Client(t)
	if err := c.Set(ctx, s.Prefix+"k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, s.Prefix+"k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}
}

func TestPrefixIsUniquePerTest(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Prefix == b.Prefix {
		t.Fatalf("two servers share the prefix %q", a.Prefix)
	}
}

func TestStopAndRestartKeepThePort(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Set(ctx, s.Prefix+"k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	s.Stop()
	s.Stop() // stopping twice is harmless
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered while the server is stopped")
	}

	addr := s.Addr
	s.Restart(t)
	if s.Addr != addr {
		t.Fatalf("Addr after Restart = %q, want %q", s.Addr, addr)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if n, err := c.Exists(ctx, s.Prefix+"k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS after Restart = %d, %v; want an empty data set", n, err)
	}
}
