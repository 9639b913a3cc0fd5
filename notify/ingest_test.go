package notify

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The one fake in the project: an HTTP server standing in for Sentry's
// ingestion endpoint. The real SDK posts envelopes to it; it parses them and
// hands every "event" item to the test.

const (
	testProject = "42"
	testKey     = "publickey"
)

// sentryEvent is the part of an event payload the tests look at.
type sentryEvent struct {
	EventID     string                    `json:"event_id"`
	Message     string                    `json:"message"`
	Level       string                    `json:"level"`
	Fingerprint []string                  `json:"fingerprint"`
	Tags        map[string]string         `json:"tags"`
	Contexts    map[string]map[string]any `json:"contexts"`
	Timestamp   time.Time                 `json:"timestamp"`
	Environment string                    `json:"environment"`
	Release     string                    `json:"release"`
	ServerName  string                    `json:"server_name"`
	Platform    string                    `json:"platform"`
}

// ingest records what the SDK posts.
type ingest struct {
	srv    *httptest.Server
	events chan sentryEvent
	errs   chan error
}

// newIngest starts the fake ingestion endpoint. hold, when not nil, runs in
// the handler before the body is read, so a test can stall the SDK's
// requests; when it returns false the request is dropped unrecorded. The
// server is closed when the test ends.
func newIngest(t *testing.T, hold func(*http.Request) bool) *ingest {
	t.Helper()
	in := &ingest{events: make(chan sentryEvent, 100), errs: make(chan error, 100)}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold != nil && !hold(r) {
			return
		}
		if err := in.record(r); err != nil {
			in.errs <- err
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	t.Cleanup(func() {
		in.srv.Close()
		close(in.errs)
		for err := range in.errs {
			t.Errorf("fake sentry: %v", err)
		}
	})
	return in
}

// dsn is the DSN that points the SDK at the fake.
func (in *ingest) dsn() string {
	return "http://" + testKey + "@" + in.srv.Listener.Addr().String() + "/" + testProject
}

// record checks one request and parses its envelope: a header line, then per
// item a header line and a payload (length bytes when the header gives one,
// else up to the newline).
func (in *ingest) record(r *http.Request) error {
	if r.Method != http.MethodPost {
		return fmt.Errorf("method %s, want POST", r.Method)
	}
	if want := "/api/" + testProject + "/envelope/"; r.URL.Path != want {
		return fmt.Errorf("path %q, want %q", r.URL.Path, want)
	}
	if auth := r.Header.Get("X-Sentry-Auth"); !strings.Contains(auth, "sentry_key="+testKey) {
		return fmt.Errorf("X-Sentry-Auth %q lacks sentry_key", auth)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("reading body: %w", err)
	}
	br := bufio.NewReader(bytes.NewReader(body))
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading envelope header: %w", err)
	}
	var head struct {
		EventID string `json:"event_id"`
		DSN     string `json:"dsn"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return fmt.Errorf("decoding envelope header %q: %w", line, err)
	}
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading item header: %w", err)
		}
		var ih struct {
			Type   string `json:"type"`
			Length *int   `json:"length"`
		}
		if err := json.Unmarshal(line, &ih); err != nil {
			return fmt.Errorf("decoding item header %q: %w", line, err)
		}
		var payload []byte
		if ih.Length != nil {
			payload = make([]byte, *ih.Length)
			if _, err := io.ReadFull(br, payload); err != nil {
				return fmt.Errorf("reading %s payload: %w", ih.Type, err)
			}
			if b, err := br.ReadByte(); err == nil && b != '\n' {
				return fmt.Errorf("%s payload not followed by a newline", ih.Type)
			}
		} else if payload, err = br.ReadBytes('\n'); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading %s payload: %w", ih.Type, err)
		}
		if ih.Type != "event" {
			continue // client reports and the like
		}
		var ev sentryEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return fmt.Errorf("decoding event payload: %w", err)
		}
		if ev.EventID != head.EventID {
			return fmt.Errorf("event id %q, envelope header says %q", ev.EventID, head.EventID)
		}
		in.events <- ev
	}
}

// next returns the next event the fake received, failing the test if none
// comes within a few seconds. After a successful Flush the event is already
// there; the deadline only guards against a hang.
func (in *ingest) next(t *testing.T) sentryEvent {
	t.Helper()
	select {
	case ev := <-in.events:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event reached the fake sentry")
		return sentryEvent{}
	}
}

// none fails the test if an event was received and not yet taken.
func (in *ingest) none(t *testing.T) {
	t.Helper()
	select {
	case ev := <-in.events:
		t.Errorf("unexpected event %q (level %s)", ev.Message, ev.Level)
	default:
	}
}
