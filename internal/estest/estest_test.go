package estest

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestStartStopRestart starts the shared node, stops it and starts it again
// on the same URL with its data.
func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	if Start(t) != s {
		t.Fatal("a second Start returned another node")
	}
	ns := s.Namespace(t)
	if ns == s.Namespace(t) || strings.ToLower(ns) != ns || strings.Contains(ns, "-") {
		t.Fatalf("bad namespace %q", ns)
	}
	if code, body := s.Request(t, "PUT", "/estest-"+ns+"/_doc/1?refresh=true", map[string]any{"a": 1}); code != http.StatusCreated {
		t.Fatalf("indexing: %d %s", code, body)
	}
	if os.Getenv(EnvURL) != "" {
		t.Skip("outage part needs a self-started node")
	}
	s.Stop(t)
	if _, err := http.Get(s.URL); err == nil {
		t.Fatal("node still answers after Stop")
	}
	s.Restart(t)
	if code, body := s.Request(t, "GET", "/estest-"+ns+"/_doc/1", nil); code != http.StatusOK {
		t.Fatalf("document lost over a restart: %d %s", code, body)
	}
}
