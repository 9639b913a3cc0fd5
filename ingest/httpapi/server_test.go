package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest"
	"github.com/vigil-soc/vigil/ingest/csp"
	"github.com/vigil-soc/vigil/internal/natstest"
	"github.com/vigil-soc/vigil/internal/tlstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness is the listener on a free port with a real embedded JetStream.
type harness struct {
	t   *testing.T
	url string
	js  jetstream.JetStream
	srv *Server
}

const token = "s3cret-token"

var secret = []byte("hmac-secret")

func start(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	js := natstest.Start(t, "test", true)
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	shared := ingest.NewMetrics(reg)
	pub := ingest.NewPublisher(js, 4, shared, slog.New(slog.DiscardHandler))
	cfg := Config{
		Listen: "127.0.0.1:0", EventsTokens: [][]byte{[]byte(token)}, EventsHMACSecret: secret,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, CSPFilter: csp.DefaultFilter(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg, pub, NewMetrics(reg, shared))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { _ = pub.Run(ctx); done <- struct{}{} }()
	go func() { _ = srv.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	<-srv.Ready()
	return &harness{t: t, url: "http://" + srv.Addr("http").String(), js: js, srv: srv}
}

func (h *harness) post(path, contentType string, body []byte, headers ...string) (int, map[string]string, http.Header) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]string
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out, resp.Header
}

// events reads every event stored so far.
func (h *harness) events() []event.Event {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		h.t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	if info.State.Msgs == 0 {
		return nil
	}
	c, _ := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	var out []event.Event
	for range info.State.Msgs {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			h.t.Fatal(err)
		}
		bus.DecodeBatch(m.Data(), func(ev *event.Event) {
			e := *ev
			if ev.CSP != nil {
				c := *ev.CSP
				e.CSP = &c
			}
			out = append(out, e)
		})
	}
	return out
}

const legacyReport = `{"csp-report":{"document-uri":"http://127.0.0.1:8080/page/uri-only","referrer":"","violated-directive":"script-src-elem","effective-directive":"script-src-elem","original-policy":"default-src 'self'; report-uri /csp-report","disposition":"enforce","blocked-uri":"inline","line-number":5,"column-number":9,"source-file":"http://127.0.0.1:8080/page/uri-only","status-code":200,"script-sample":""}}`

const reportingAPI = `[{"age":1500,"body":{"blockedURL":"https://evil.example/x.js","disposition":"enforce","documentURL":"https://shop.example/cart","effectiveDirective":"script-src-elem","originalPolicy":"script-src 'self'; report-to csp","referrer":"","sample":"","statusCode":200},"type":"csp-violation","url":"https://shop.example/cart","user_agent":"HeadlessChrome/156"},{"age":0,"body":{"id":"x"},"type":"deprecation","url":"https://shop.example/","user_agent":"HeadlessChrome/156"}]`

func TestCSPReports(t *testing.T) {
	h := start(t, nil)
	if code, body, hdr := h.post("/csp-report", "application/csp-report", []byte(legacyReport)); code != 204 || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("legacy, no Origin (not a CORS request): %d %v %v", code, body, hdr)
	}
	code, body, hdr := h.post("/reports", "application/reports+json", []byte(reportingAPI), "Origin", "https://shop.example")
	if code != 204 || hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("reporting API: %d %v %v", code, body, hdr)
	}
	evs := h.events()
	if len(evs) != 2 {
		t.Fatalf("%d events stored, want 2", len(evs))
	}
	if evs[0].CSP.BlockedURI != "inline" || evs[0].CSP.Format != "report-uri" || evs[0].SourceIP.String() != "127.0.0.1" {
		t.Errorf("legacy event %+v %+v", evs[0], evs[0].CSP)
	}
	if evs[1].CSP.BlockedOrigin != "https://evil.example" || evs[1].CSP.Format != "reporting-api" || evs[1].CSP.AgeMillis != 1500 {
		t.Errorf("reporting API event %+v", evs[1].CSP)
	}
	// The same report again (a browser reporting another violation alike
	// to the byte) is another event, with an id of its own.
	if code, body, _ := h.post("/csp-report", "application/csp-report", []byte(legacyReport)); code != 204 {
		t.Fatalf("legacy, sent again: %d %v", code, body)
	}
	if evs = h.events(); len(evs) != 3 || evs[2].ID == evs[0].ID {
		t.Fatalf("the same report twice: %d events stored, ids %s and %s; want 3 events, two ids", len(evs), evs[0].ID, evs[len(evs)-1].ID)
	}
}

// TestCountedNotKept: what the listener accepts but does not store is
// counted: extension noise, other Reporting API types; an unknown event
// kind is stored as "unknown" and counted; /events refuses a body that is
// not JSON by its content type.
func TestCountedNotKept(t *testing.T) {
	h := start(t, nil)
	extension := strings.Replace(legacyReport, `"blocked-uri":"inline"`, `"blocked-uri":"chrome-extension://abcdefghijklmnop/inject.js"`, 1)
	if code, body, _ := h.post("/csp-report", "application/csp-report", []byte(extension)); code != 204 {
		t.Fatalf("extension report: %d %v, want 204", code, body)
	}
	if code, body, _ := h.post("/reports", "application/reports+json", []byte(reportingAPI)); code != 204 {
		t.Fatalf("reporting API: %d %v, want 204", code, body)
	}
	others := `[{"age":0,"body":{},"type":"integrity-violation","url":"https://shop.example/","user_agent":"x"},` +
		`{"age":0,"body":{},"type":"made-up-type","url":"https://shop.example/","user_agent":"x"}]`
	if code, body, _ := h.post("/reports", "application/reports+json", []byte(others)); code != 204 {
		t.Fatalf("other report types: %d %v, want 204", code, body)
	}
	unknown := []byte(`{"kind":"payments.chargeback","client_ip":"203.0.113.9"}`)
	if code, body, _ := h.post("/events", "application/json", unknown, "Authorization", "Bearer "+token); code != 204 {
		t.Fatalf("unknown kind: %d %v, want 204", code, body)
	}
	if code, _, _ := h.post("/events", "text/plain", unknown, "Authorization", "Bearer "+token); code != http.StatusUnsupportedMediaType {
		t.Fatalf("/events as text/plain: %d, want 415", code)
	}
	var csps, apps []event.Event
	for _, ev := range h.events() {
		if ev.Source == event.SourceCSP {
			csps = append(csps, ev)
		} else {
			apps = append(apps, ev)
		}
	}
	if len(csps) != 1 || csps[0].CSP.Format != "reporting-api" {
		t.Errorf("CSP events stored: %d, want only the Reporting API's violation", len(csps))
	}
	if len(apps) != 1 || apps[0].Action != "unknown" || apps[0].Name != "payments.chargeback" {
		t.Errorf("app events stored: %+v, want one of action unknown", apps)
	}
	for name, got := range map[string]float64{
		`skipped{csp,extension}`:             testutil.ToFloat64(h.srv.m.Skipped.WithLabelValues(event.SourceCSP, csp.ReasonExtension)),
		`reports_other{deprecation}`:         testutil.ToFloat64(h.srv.m.OtherReports.WithLabelValues("deprecation")),
		`reports_other{integrity-violation}`: testutil.ToFloat64(h.srv.m.OtherReports.WithLabelValues("integrity-violation")),
		`reports_other{other}`:               testutil.ToFloat64(h.srv.m.OtherReports.WithLabelValues("other")),
		`app_unknown_kinds`:                  testutil.ToFloat64(h.srv.m.UnknownKinds),
	} {
		if got != 1 {
			t.Errorf("%s = %v, want 1", name, got)
		}
	}
}

func TestPreflight(t *testing.T) {
	h := start(t, nil)
	req, _ := http.NewRequest(http.MethodOptions, h.url+"/reports", nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.EqualFold(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestRefusals(t *testing.T) {
	h := start(t, func(c *Config) { c.RatePerSecond, c.Burst = 1, 30 })
	cases := []struct {
		name, path, ct string
		body           []byte
		code           int
		field          string
	}{
		{"wrong content type", "/csp-report", "text/plain", []byte(legacyReport), 415, ""},
		{"malformed JSON", "/csp-report", "application/csp-report", []byte(`{"csp-report":`), 400, ""},
		{"oversized", "/reports", "application/reports+json", bytes.Repeat([]byte("x"), 70<<10), 413, ""},
		{"events without token", "/events", "application/json", []byte(`{"kind":"a.b"}`), 401, ""},
	}
	for _, tc := range cases {
		code, body, _ := h.post(tc.path, tc.ct, tc.body)
		if code != tc.code || body["error"] == "" {
			t.Errorf("%s: %d %v, want %d with a JSON error", tc.name, code, body, tc.code)
		}
	}
	code, body, _ := h.post("/events", "application/json", []byte(`[{"kind":"a.b"},{"kind":"a.b","client_ip":"nope"}]`), "Authorization", "Bearer "+token)
	if code != 400 || body["field"] != "[1].client_ip" {
		t.Errorf("bad event: %d %v, want 400 naming [1].client_ip", code, body)
	}
	if len(h.events()) != 0 {
		t.Errorf("refused requests stored events")
	}
	// GET is refused naming the methods each endpoint takes: OPTIONS only
	// where browsers make preflights.
	for path, allow := range map[string]string{"/events": "POST", "/csp-report": "POST, OPTIONS"} {
		resp, err := http.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != allow {
			t.Errorf("GET %s: %d, Allow %q; want 405, %q", path, resp.StatusCode, resp.Header.Get("Allow"), allow)
		}
	}
	// Exhaust the rate limit: 30 burst, 1/s.
	limited := 0
	for range 40 {
		if code, _, _ := h.post("/csp-report", "application/csp-report", []byte(legacyReport), "X-Forwarded-For", "198.51.100.77"); code == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Errorf("no 429 after 40 quick requests")
	}
	// Another client is not slowed by the first.
	if code, _, _ := h.post("/csp-report", "application/csp-report", []byte(legacyReport), "X-Forwarded-For", "198.51.100.78"); code != 204 {
		t.Errorf("another client got %d", code)
	}
	// Requests to no endpoint, or with the wrong method, take tokens too.
	limited = 0
	for range 40 {
		req, _ := http.NewRequest("GET", h.url+"/wp-login.php", nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.79")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Errorf("no 429 after 40 quick requests to no endpoint")
	}
	// The application's servers, authenticated, are not limited (they ship
	// from few addresses); a client guessing credentials is.
	event := []byte(`{"kind":"auth.login_failed","client_ip":"203.0.113.7"}`)
	for i := range 40 {
		if code, resp, _ := h.post("/events", "application/json", event, "X-Forwarded-For", "198.51.100.80", "Authorization", "Bearer "+token); code != 204 {
			t.Fatalf("authenticated /events request %d: %d %v, want 204", i, code, resp)
		}
	}
	limited = 0
	for range 40 {
		if code, _, _ := h.post("/events", "application/json", event, "X-Forwarded-For", "198.51.100.81", "Authorization", "Bearer wrong-token"); code == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Errorf("no 429 after 40 quick /events requests with a wrong token")
	}
	// Once the guesser's tokens are spent, no credential is checked: the
	// right token from that address is refused too, so guessing goes no
	// faster than the rate limit.
	if code, resp, _ := h.post("/events", "application/json", event, "X-Forwarded-For", "198.51.100.81", "Authorization", "Bearer "+token); code != 429 {
		t.Errorf("the right token from an address out of tokens: %d %v, want 429 before authentication", code, resp)
	}
}

func sign(ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%d.", ts)
	mac.Write(body)
	return "t=" + strconv.FormatInt(ts, 10) + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// signV2 signs the Idempotency-Key with the body.
func signV2(ts int64, key string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "v2.%d.%s.", ts, key)
	mac.Write(body)
	return "t=" + strconv.FormatInt(ts, 10) + ",v2=" + hex.EncodeToString(mac.Sum(nil))
}

func TestEventsAuth(t *testing.T) {
	h := start(t, nil)
	body := []byte(`{"kind":"auth.login_failed","client_ip":"203.0.113.7","user":{"name":"alice"},"path":"/api/token/"}`)
	cases := []struct {
		name    string
		headers []string
		code    int
	}{
		{"wrong token", []string{"Authorization", "Bearer nope"}, 401},
		{"good token", []string{"Authorization", "Bearer " + token}, 204},
		{"scheme in lower case", []string{"Authorization", "bearer " + token}, 204},
		{"basic scheme", []string{"Authorization", "Basic " + token}, 401},
		{"good signature", []string{"X-Vigil-Signature", sign(time.Now().Unix(), body)}, 204},
		{"stale signature", []string{"X-Vigil-Signature", sign(time.Now().Add(-10*time.Minute).Unix(), body)}, 401},
		{"forged signature", []string{"X-Vigil-Signature", sign(time.Now().Unix(), []byte("other"))}, 401},
	}
	for _, tc := range cases {
		if code, resp, _ := h.post("/events", "application/json", body, tc.headers...); code != tc.code {
			t.Errorf("%s: %d %v, want %d", tc.name, code, resp, tc.code)
		}
	}
	replayed := sign(time.Now().Unix()+1, body)
	h.post("/events", "application/json", body, "X-Vigil-Signature", replayed)
	if code, _, _ := h.post("/events", "application/json", body, "X-Vigil-Signature", replayed); code != 401 {
		t.Errorf("replayed signature: %d, want 401", code)
	}
	evs := h.events()
	if len(evs) != 4 || evs[0].Action != "login-failed" || evs[0].UserName != "alice" || evs[0].SourceIP.String() != "203.0.113.7" {
		t.Fatalf("stored %d events: %+v", len(evs), evs)
	}
}

// TestSignedRetryAfterFailure: a signed request refused before its events
// were queued may be sent again with the same signature (a shipper retrying
// within the same second signs it identically); one whose events were
// queued may not, even if its client gave up waiting, and neither may the
// same MAC in upper-case hex.
func TestSignedRetryAfterFailure(t *testing.T) {
	h := start(t, nil)
	body := []byte(`{"kind":"auth.login_failed","client_ip":"203.0.113.9","user":{"name":"bob"}}`)
	sig := sign(time.Now().Unix(), body)
	if code, _, _ := h.post("/events", "text/plain", body, "X-Vigil-Signature", sig); code != http.StatusUnsupportedMediaType {
		t.Fatalf("wrong content type: %d, want 415", code)
	}
	if code, resp, _ := h.post("/events", "application/json", body, "X-Vigil-Signature", sig); code != http.StatusNoContent {
		t.Fatalf("the same signed request after a 415: %d %v, want 204", code, resp)
	}
	ts, mac, _ := strings.Cut(sig, "v1=")
	for _, replay := range []string{sig, ts + "v1=" + strings.ToUpper(mac)} {
		if code, _, _ := h.post("/events", "application/json", body, "X-Vigil-Signature", replay); code != http.StatusUnauthorized {
			t.Fatalf("%s once stored: %d, want 401", replay, code)
		}
	}

	// Queued, not stored in time: JetStream has no stream, the client
	// gives up. It may send the request again with the same signature
	// (a 401 would read as bad credentials to a shipper): its events are
	// stored once, when the stream is back, however often it is sent.
	ctx := context.Background()
	if err := h.js.DeleteStream(ctx, bus.StreamEvents); err != nil {
		t.Fatal(err)
	}
	body2 := []byte(`{"kind":"auth.login_failed","client_ip":"203.0.113.9","user":{"name":"carol"}}`)
	sig2 := sign(time.Now().Unix(), body2)
	req, _ := http.NewRequest("POST", h.url+"/events", bytes.NewReader(body2))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Vigil-Signature", sig2)
	if resp, err := (&http.Client{Timeout: 300 * time.Millisecond}).Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d with no stream to store in", resp.StatusCode)
	}
	// Its handler lets go of the signature once it sees the client gone.
	closed := h.srv.m.requests("events", statusClientClosed)
	waitFor(t, func() bool { return testutil.ToFloat64(closed) == 1 })
	retried := make(chan int, 1)
	go func() {
		code, _, _ := h.post("/events", "application/json", body2, "X-Vigil-Signature", sig2)
		retried <- code
	}()
	time.Sleep(200 * time.Millisecond)
	if err := bus.EnsureStreams(ctx, h.js, bus.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	if code := <-retried; code != http.StatusNoContent {
		t.Fatalf("the same signed request after its client gave up: %d, want 204", code)
	}
	// Stored: a replay now is refused.
	if code, _, _ := h.post("/events", "application/json", body2, "X-Vigil-Signature", sig2); code != http.StatusUnauthorized {
		t.Fatalf("%s once stored: %d, want 401", sig2, code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		carol := 0
		for _, ev := range h.events() {
			if ev.UserName == "carol" {
				carol++
			}
		}
		if carol == 1 {
			break
		}
		if carol > 1 || time.Now().After(deadline) {
			t.Fatalf("carol's event stored %d times, want once", carol)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEventsIdempotencyKey: a POST /events sent again with the same body
// and Idempotency-Key (a shipper retrying after a timeout, its events
// stored) is answered 204 and stored once; another key or body is stored
// again; a malformed key is refused with a 400 naming it, storing nothing.
func TestEventsIdempotencyKey(t *testing.T) {
	h := start(t, nil)
	body := []byte(`[{"kind":"auth.login_failed","client_ip":"203.0.113.7","user":{"name":"dave"}},` +
		`{"kind":"auth.login_failed","client_ip":"198.51.100.9","user":{"name":"dave"}},` +
		`{"kind":"auth.login_failed","client_ip":"192.0.2.44","user":{"name":"dave"}}]`)
	other := []byte(`{"kind":"auth.login_failed","client_ip":"203.0.113.7","user":{"name":"erin"}}`)
	auth := []string{"Authorization", "Bearer " + token}
	for _, tc := range []struct {
		name    string
		body    []byte
		headers []string
		code    int
	}{
		{"first", body, append(auth, "Idempotency-Key", "b7e4c1de-0f6a-4c39-9a4e-3d2f8c1b5a60"), 204},
		{"sent again", body, append(auth, "Idempotency-Key", "b7e4c1de-0f6a-4c39-9a4e-3d2f8c1b5a60"), 204},
		{"signed (v2), sent again", body, []string{"X-Vigil-Signature", signV2(time.Now().Unix(), "b7e4c1de-0f6a-4c39-9a4e-3d2f8c1b5a60", body), "Idempotency-Key", "b7e4c1de-0f6a-4c39-9a4e-3d2f8c1b5a60"}, 204},
		{"another body, same key", other, append(auth, "Idempotency-Key", "b7e4c1de-0f6a-4c39-9a4e-3d2f8c1b5a60"), 204},
		{"space in key", body, append(auth, "Idempotency-Key", "a b"), 400},
		{"key too long", body, append(auth, "Idempotency-Key", strings.Repeat("k", 129)), 400},
	} {
		code, resp, _ := h.post("/events", "application/json", tc.body, tc.headers...)
		if code != tc.code {
			t.Fatalf("%s: %d %v, want %d", tc.name, code, resp, tc.code)
		}
		if code == 400 && resp["field"] != "Idempotency-Key" {
			t.Errorf("%s: error %v does not name Idempotency-Key as its field", tc.name, resp)
		}
	}
	count := func() map[string]int {
		n := map[string]int{}
		for _, ev := range h.events() {
			n[ev.UserName+" "+ev.SourceIP.String()]++
		}
		return n
	}
	want := map[string]int{"dave 203.0.113.7": 1, "dave 198.51.100.9": 1, "dave 192.0.2.44": 1, "erin 203.0.113.7": 1}
	if got := count(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
	h.post("/events", "application/json", body, append(auth, "Idempotency-Key", "another")...)
	h.post("/events", "application/json", body, auth...)
	want = map[string]int{"dave 203.0.113.7": 3, "dave 198.51.100.9": 3, "dave 192.0.2.44": 3, "erin 203.0.113.7": 1}
	if got := count(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after another key and no key: stored %v, want %v", got, want)
	}
	// Events stored again are events of their own, with ids of their own
	// (Elasticsearch, which indexes them by id, keeps every one).
	ids := map[string]bool{}
	for _, ev := range h.events() {
		if ids[ev.ID] {
			t.Fatalf("two stored events have the id %s", ev.ID)
		}
		ids[ev.ID] = true
	}
}

// TestReplayCache: a signature is remembered for at least the ttl, and
// forgotten within twice it; forget drops it at once.
func TestReplayCache(t *testing.T) {
	const ttl = 10 * time.Minute
	c := newReplayCache(ttl)
	t0 := time.Now()
	if !c.firstSeen("a", t0) || c.firstSeen("a", t0.Add(time.Minute)) {
		t.Fatal("a signature seen twice within a minute: want new, then seen")
	}
	// b comes just before a new generation starts: kept through it.
	if !c.firstSeen("b", t0.Add(ttl-time.Second)) {
		t.Fatal("b: want new")
	}
	if c.firstSeen("b", t0.Add(ttl+time.Second)) || c.firstSeen("a", t0.Add(ttl+time.Second)) {
		t.Fatal("a or b taken again within the ttl of their first use")
	}
	if !c.firstSeen("a", t0.Add(2*ttl+2*time.Second)) {
		t.Fatal("a, more than twice the ttl later: want new again")
	}
	c.forget("a")
	if !c.firstSeen("a", t0.Add(2*ttl+3*time.Second)) {
		t.Fatal("a, forgotten: want new again")
	}
	// A full generation starts the next one: memory stays bounded.
	for i := range 3 * maxReplayGeneration {
		c.firstSeen(strconv.Itoa(i), t0.Add(2*ttl+4*time.Second))
	}
	if n := len(c.cur) + len(c.prev); n > 2*maxReplayGeneration {
		t.Fatalf("%d signatures held, want at most %d", n, 2*maxReplayGeneration)
	}
}

// TestSignedReplayStoredOnce: a captured signed request replayed where the
// replay cache does not know it (another ingest process, or after a
// restart) is stored once: a v1 signature does not cover the
// Idempotency-Key, so such requests are deduplicated on the signature,
// with or without the header; a v2 signature covers the key, which cannot
// then be dropped or changed.
func TestSignedReplayStoredOnce(t *testing.T) {
	h := start(t, nil)
	count := func(name string) int {
		n := 0
		for _, ev := range h.events() {
			if ev.UserName == name {
				n++
			}
		}
		return n
	}
	forget := func() { h.srv.replay = newReplayCache(10 * time.Minute) } // another process

	v1body := []byte(`{"kind":"auth.login_failed","client_ip":"203.0.113.7","user":{"name":"dave"}}`)
	v1 := sign(time.Now().Unix(), v1body)
	for i, headers := range [][]string{
		{"X-Vigil-Signature", v1, "Idempotency-Key", "k-1"},
		{"X-Vigil-Signature", v1},                           // the key dropped
		{"X-Vigil-Signature", v1, "Idempotency-Key", "k-2"}, // or changed
	} {
		forget()
		if code, resp, _ := h.post("/events", "application/json", v1body, headers...); code != 204 {
			t.Fatalf("v1 attempt %d: %d %v", i, code, resp)
		}
	}
	if n := count("dave"); n != 1 {
		t.Fatalf("a v1-signed request replayed: stored %d times, want once", n)
	}

	v2body := []byte(`{"kind":"auth.login_failed","client_ip":"203.0.113.7","user":{"name":"erin"}}`)
	v2 := signV2(time.Now().Unix(), "k-3", v2body)
	forget()
	if code, resp, _ := h.post("/events", "application/json", v2body, "X-Vigil-Signature", v2, "Idempotency-Key", "k-3"); code != 204 {
		t.Fatalf("v2: %d %v", code, resp)
	}
	for _, headers := range [][]string{
		{"X-Vigil-Signature", v2},                           // the key dropped
		{"X-Vigil-Signature", v2, "Idempotency-Key", "k-4"}, // or changed
	} {
		forget()
		if code, _, _ := h.post("/events", "application/json", v2body, headers...); code != http.StatusUnauthorized {
			t.Fatalf("v2 replayed with %v: %d, want 401", headers, code)
		}
	}
	forget()
	if code, _, _ := h.post("/events", "application/json", v2body, "X-Vigil-Signature", v2, "Idempotency-Key", "k-3"); code != 204 {
		t.Fatalf("v2 replayed whole: %d, want 204 (and dropped as a duplicate)", code)
	}
	// A v2 MAC is never a v1 MAC of another body, nor the other way.
	forget()
	asV1 := strings.Replace(v2, "v2=", "v1=", 1)
	if code, _, _ := h.post("/events", "application/json", append([]byte("k-3."), v2body...), "X-Vigil-Signature", asV1); code != http.StatusUnauthorized {
		t.Fatalf("a v2 MAC presented as v1 over key.body: %d, want 401", code)
	}
	// A key with a '.' could shift bytes between key and body under one MAC.
	forget()
	dotted := signV2(time.Now().Unix(), "a.b", v2body)
	if code, _, _ := h.post("/events", "application/json", v2body, "X-Vigil-Signature", dotted, "Idempotency-Key", "a.b"); code != http.StatusUnauthorized {
		t.Fatalf("v2 with a dotted key: %d, want 401", code)
	}
	// A retry signed anew under the same key is the same request.
	forget()
	retry := signV2(time.Now().Unix()+1, "k-3", v2body)
	if code, _, _ := h.post("/events", "application/json", v2body, "X-Vigil-Signature", retry, "Idempotency-Key", "k-3"); code != 204 {
		t.Fatalf("v2 retry: %d", code)
	}
	if n := count("erin"); n != 1 {
		t.Fatalf("a v2-signed request replayed and retried: stored %d times, want once", n)
	}
}

// TestHTTPSServesHTTP2: the TLS listener negotiates HTTP/2 (browsers
// deliver Reporting API reports to HTTPS endpoints only).
func TestHTTPSServesHTTP2(t *testing.T) {
	cert, key, _ := tlstest.SelfSigned(t)
	h := start(t, func(c *Config) { c.ListenTLS, c.TLSCert, c.TLSKey = "127.0.0.1:0", cert, key })
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Post("https://"+h.srv.Addr("https").String()+"/csp-report", "application/csp-report", strings.NewReader(legacyReport))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.ProtoMajor != 2 {
		t.Fatalf("HTTPS report: %d over %s, want 204 over HTTP/2", resp.StatusCode, resp.Proto)
	}
}

// TestStalledConnectionsAreClosed: a client that stops sending its
// headers or its body, or keeps an idle connection open, is disconnected
// after the configured timeout.
func TestStalledConnectionsAreClosed(t *testing.T) {
	h := start(t, func(c *Config) {
		c.Timeouts = Timeouts{ReadHeader: 200 * time.Millisecond, Read: 400 * time.Millisecond, Idle: 300 * time.Millisecond}
	})
	addr := strings.TrimPrefix(h.url, "http://")
	cases := []struct{ name, send string }{
		{"headers cut short", "POST /csp-report HTTP/1.1\r\nHost: vigil\r\nContent-Type: application/csp-report\r\n"},
		{"body cut short", "POST /csp-report HTTP/1.1\r\nHost: vigil\r\nContent-Type: application/csp-report\r\nContent-Length: 400\r\n\r\n{\"csp-report\":"},
		{"idle after a request", "POST /csp-report HTTP/1.1\r\nHost: vigil\r\nContent-Type: application/csp-report\r\nContent-Length: " +
			strconv.Itoa(len(legacyReport)) + "\r\n\r\n" + legacyReport},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			got, err := io.ReadAll(c) // returns when the server closes
			if err != nil {
				t.Fatalf("the server kept the connection open for %s: %v (read %q)", time.Since(start), err, got)
			}
			if tc.name == "idle after a request" && !strings.HasPrefix(string(got), "HTTP/1.1 204") {
				t.Errorf("answer before closing: %q, want a 204", got)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	cases := []struct{ peer, xff, want string }{
		{"203.0.113.1:5000", "198.51.100.1", "203.0.113.1"},                  // untrusted peer: XFF ignored
		{"10.0.0.5:5000", "198.51.100.1", "198.51.100.1"},                    // trusted proxy
		{"10.0.0.5:5000", "6.6.6.6, 198.51.100.1, 10.0.0.9", "198.51.100.1"}, // spoofed left part ignored
		{"[::ffff:10.0.0.5]:5000", "2001:db8::1", "2001:db8::1"},             // mapped peer
		{"10.0.0.5:5000", "", "10.0.0.5"},                                    // no header
		{"10.0.0.5:5000", "garbage, 198.51.100.2", "198.51.100.2"},           // right-most valid
		{"10.0.0.5:5000", "198.51.100.3:4444", "198.51.100.3"},               // with a port
		{"10.0.0.5:5000", `"[2001:db8::3]:443"`, "2001:db8::3"},              // bracketed, quoted
		{"10.0.0.5:5000", "[2001:db8::4]", "2001:db8::4"},                    // bracketed
		{"10.0.0.5:5000", "198.51.100.5, garbage", "10.0.0.5"},               // nothing left of garbage is believed
	}
	for _, tc := range cases {
		r, _ := http.NewRequest("POST", "/", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := s.clientIP(r).String(); got != tc.want {
			t.Errorf("peer %s xff %q: %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

// A client that sends half a request and stalls does not hold up others.
func TestSlowClientDoesNotBlockOthers(t *testing.T) {
	h := start(t, nil)
	addr := strings.TrimPrefix(h.url, "http://")
	var stalled []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /csp-report HTTP/1.1\r\nHost: x\r\nContent-Type: application/csp-report\r\nContent-Length: 1000\r\n\r\n{\"csp-")
		stalled = append(stalled, c)
	}
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	if code, body, _ := h.post("/csp-report", "application/csp-report", []byte(legacyReport)); code != 204 {
		t.Fatalf("a normal report while 20 clients stall: %d %v", code, body)
	}
}

// TestStopAnswersRequestsUnderWay: a report whose events are being stored
// when the listener is told to stop is answered 204 once they are, for as
// long as the write timeout allows (here longer than the 5 s an earlier
// version waited), and Run returns after that; a stop does not cut it off.
// A store that outlasts the write timeout cannot be answered: Run then
// closes the connection and returns.
func TestStopAnswersRequestsUnderWay(t *testing.T) {
	t.Run("answered", func(t *testing.T) {
		srv, js, srvDone, stop := stoppable(t, 8*time.Second)
		answer := postAsync(srv)
		time.Sleep(300 * time.Millisecond) // queued, waiting for the stream
		stop()
		time.Sleep(5500 * time.Millisecond)
		select {
		case <-srvDone:
			t.Fatal("the listener stopped with a request under way, inside its write timeout")
		default:
		}
		natstest.EnsureStreams(t, js)
		if code := <-answer; code != http.StatusNoContent {
			t.Fatalf("report under way at the stop: %d, want 204", code)
		}
		select {
		case <-srvDone:
		case <-time.After(5 * time.Second):
			t.Fatal("the listener did not stop once its request was answered")
		}
	})
	t.Run("past the write timeout", func(t *testing.T) {
		srv, js, srvDone, stop := stoppable(t, time.Second)
		answer := postAsync(srv)
		time.Sleep(300 * time.Millisecond)
		stop()
		select {
		case <-srvDone:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return past the write timeout with a store still waiting")
		}
		if code := <-answer; code == http.StatusNoContent {
			t.Fatal("a report never stored was answered 204")
		}
		natstest.EnsureStreams(t, js) // the publisher stores it and stops at once
	})
}

// stoppable starts a listener with the given write timeout and a publisher
// on a JetStream server with no stream yet, so a store waits; stop stops
// the listener, and srvDone is closed when its Run returns.
func stoppable(t *testing.T, write time.Duration) (srv *Server, js jetstream.JetStream, srvDone chan struct{}, stop func()) {
	t.Helper()
	js = natstest.Start(t, "test", false)
	reg := prometheus.NewRegistry()
	shared := ingest.NewMetrics(reg)
	pub := ingest.NewPublisher(js, 1, shared, slog.New(slog.DiscardHandler))
	pub.StoreTimeout = 20 * time.Second
	srv, err := New(Config{Listen: "127.0.0.1:0", CSPFilter: csp.DefaultFilter(), Timeouts: Timeouts{Write: write}}, pub, NewMetrics(reg, shared))
	if err != nil {
		t.Fatal(err)
	}
	pctx, stopPub := context.WithCancel(context.Background())
	sctx, stopSrv := context.WithCancel(context.Background())
	pubDone := make(chan struct{})
	srvDone = make(chan struct{})
	go func() { defer close(pubDone); _ = pub.Run(pctx) }()
	go func() { defer close(srvDone); _ = srv.Run(sctx) }()
	t.Cleanup(func() { stopSrv(); stopPub(); <-srvDone; <-pubDone })
	<-srv.Ready()
	return srv, js, srvDone, stopSrv
}

// postAsync posts a CSP report to srv and sends its status (0 if no answer
// came) on the returned channel.
func postAsync(srv *Server) <-chan int {
	answer := make(chan int, 1)
	go func() {
		resp, err := http.Post("http://"+srv.Addr("http").String()+"/csp-report", "application/csp-report", strings.NewReader(legacyReport))
		if err != nil {
			answer <- 0
			return
		}
		resp.Body.Close()
		answer <- resp.StatusCode
	}()
	return answer
}

// TestClientGoneWhileStoring: a client that leaves while its report waits
// for JetStream is counted as 499, not as a failure, and its report is
// still stored once the stream is back.
func TestClientGoneWhileStoring(t *testing.T) {
	h := start(t, nil)
	ctx := context.Background()
	if err := h.js.DeleteStream(ctx, bus.StreamEvents); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 300 * time.Millisecond}
	resp, err := client.Post(h.url+"/csp-report", "application/csp-report", strings.NewReader(legacyReport))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d with no stream to store in", resp.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(h.srv.m.Requests.WithLabelValues("csp-report", "499")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no 499 counted; 503s: %v", testutil.ToFloat64(h.srv.m.Requests.WithLabelValues("csp-report", "503")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := bus.EnsureStreams(ctx, h.js, bus.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for len(h.events()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the report of the client that left was not stored")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialFrom opens a TCP connection to the listener from a loopback address
// of its own (127.0.0.x), standing for a client.
func (h *harness) dialFrom(x int) net.Conn {
	h.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(x))}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closed c (a read ends at once
// with EOF or a reset rather than waiting).
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestConnectionCaps: a client holding max_conns_per_client connections
// makes room for its next one by closing its own connection waiting
// longest, and gets it closed at once when all of its connections have a
// request in progress, while another client is served; at max_conns a new
// connection closes the one waiting longest without a request, and when
// every connection has a request in progress the new one is closed.
// Nothing else is disturbed, and every case is counted.
func TestConnectionCaps(t *testing.T) {
	h := start(t, func(c *Config) { c.TrustedProxies, c.MaxConns, c.MaxConnsPerClient = nil, 6, 3 })
	m, g := h.srv.m, h.srv.guard
	client := netip.MustParseAddr("127.0.0.11")
	// The client's connections, as the ConnState hook has seen them.
	seen := func() int { g.mu.Lock(); defer g.mu.Unlock(); return len(g.byClient[client]) }
	// busy starts a request on c whose body is still coming.
	busy := func(c net.Conn) {
		t.Helper()
		if _, err := c.Write([]byte("POST /csp-report HTTP/1.1\r\nHost: x\r\nContent-Type: application/csp-report\r\nContent-Length: 100\r\n\r\n{")); err != nil {
			t.Fatal(err)
		}
	}
	waiting := func(conns ...net.Conn) int {
		n := 0
		for _, c := range conns {
			// The hook's key is the guarded server side, found by the
			// client's port.
			g.conns.Range(func(k, v any) bool {
				if k.(net.Conn).RemoteAddr().String() == c.LocalAddr().String() && v.(*connState).waitingSince.Load() != 0 {
					n++
				}
				return true
			})
		}
		return n
	}

	hog := []net.Conn{h.dialFrom(11), h.dialFrom(11), h.dialFrom(11)}
	waitFor(t, func() bool { return seen() == 3 })
	fourth := h.dialFrom(11)
	if !closedByServer(hog[0]) {
		t.Fatal("at its cap, the client's connection waiting longest was not closed for its new one")
	}
	if got := testutil.ToFloat64(m.ConnsEvicted.WithLabelValues("per_client", "new")); got != 1 {
		t.Errorf("evicted per_client new = %v, want 1", got)
	}
	hog = []net.Conn{hog[1], hog[2], fourth}
	waitFor(t, func() bool { return testutil.ToFloat64(m.Conns) == 3 && seen() == 3 })
	for _, c := range hog {
		busy(c)
	}
	waitFor(t, func() bool { return waiting(hog...) == 0 })
	if extra := h.dialFrom(11); !closedByServer(extra) {
		t.Fatal("a connection past the client's cap was kept while all of its connections were busy")
	}
	if got := testutil.ToFloat64(m.ConnsRefused.WithLabelValues("per_client")); got != 1 {
		t.Errorf("refused per_client = %v, want 1", got)
	}

	// Another client is served meanwhile, over a connection it keeps
	// alive (idle after its request).
	kept := h.dialFrom(12)
	post := "POST /csp-report HTTP/1.1\r\nHost: x\r\nContent-Type: application/csp-report\r\nContent-Length: " +
		strconv.Itoa(len(legacyReport)) + "\r\n\r\n" + legacyReport
	if _, err := kept.Write([]byte(post)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(kept), nil)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("another client's report: %v %v", resp, err)
	}
	waitFor(t, func() bool { return waiting(kept) == 1 })
	// Two more silent connections: six, the cap. The next one evicts the
	// one waiting longest, kept alive since its request.
	silent := []net.Conn{h.dialFrom(13), h.dialFrom(13)}
	waitFor(t, func() bool { return testutil.ToFloat64(m.Conns) == 6 })
	late := h.dialFrom(14)
	if !closedByServer(kept) {
		t.Fatal("at the cap, the connection waiting longest was not closed")
	}
	if got := testutil.ToFloat64(m.ConnsEvicted.WithLabelValues("limit", "idle")); got != 1 {
		t.Errorf("evicted limit idle = %v, want 1", got)
	}
	if _, err := late.Write([]byte(post)); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(late), nil); err != nil || resp.StatusCode != 204 {
		t.Fatalf("the new connection's report: %v %v", resp, err)
	}
	// Every connection busy: a new one is closed and the busy ones are
	// left alone.
	waitFor(t, func() bool { return testutil.ToFloat64(m.Conns) == 6 })
	for _, c := range []net.Conn{late, silent[0], silent[1]} {
		busy(c)
	}
	waitFor(t, func() bool {
		n := 0
		g.conns.Range(func(_, v any) bool {
			if v.(*connState).waitingSince.Load() != 0 {
				n++
			}
			return true
		})
		return n == 0
	})
	if extra := h.dialFrom(17); !closedByServer(extra) {
		t.Fatal("a connection past the cap was kept while every one was busy")
	}
	if got := testutil.ToFloat64(m.ConnsRefused.WithLabelValues("limit")); got != 1 {
		t.Errorf("refused limit = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.Conns); got != 6 {
		t.Errorf("open connections %v, want the 6 busy ones", got)
	}
	if got := testutil.ToFloat64(m.ConnsEvicted.WithLabelValues("per_client", "new")) + testutil.ToFloat64(m.ConnsEvicted.WithLabelValues("limit", "idle")); got != 2 {
		t.Errorf("evictions %v, want the 2 above", got)
	}
}

// TestLocalhostNotCappedPerClient: 127.0.0.1, where a proxy or a load
// generator on the same host connects from, is not capped per client;
// another address is.
func TestLocalhostNotCappedPerClient(t *testing.T) {
	h := start(t, func(c *Config) { c.TrustedProxies, c.MaxConnsPerClient = nil, 1 })
	var local []net.Conn
	for range 3 {
		local = append(local, h.dialFrom(1))
	}
	waitFor(t, func() bool { return testutil.ToFloat64(h.srv.m.Conns) == 3 })
	first := h.dialFrom(31)
	g, client := h.srv.guard, netip.MustParseAddr("127.0.0.31")
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.byClient[client]) == 1 })
	h.dialFrom(31)
	if !closedByServer(first) {
		t.Fatal("127.0.0.31's first connection was kept past its cap of 1")
	}
	if got := testutil.ToFloat64(h.srv.m.ConnsEvicted.WithLabelValues("per_client", "new")); got != 1 {
		t.Errorf("evicted per_client = %v, want 1 (127.0.0.1's three kept)", got)
	}
	for _, c := range local {
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatalf("a connection from 127.0.0.1 was closed: %v", err)
		}
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
	}
}

// TestLimiterBuckets: the addresses of one IPv6 /64 share a bucket; at the
// bucket cap, a flood of one request from each of many new /64s neither
// goes unlimited from one /64 nor refuses new clients their first request.
func TestLimiterBuckets(t *testing.T) {
	l := newLimiter(1, 3)
	now := time.Now()
	ok := 0
	for i := range 10 {
		if l.allow(netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1)), now) {
			ok++
		}
	}
	if ok != 3 {
		t.Fatalf("10 addresses of one /64 got %d requests through, want the burst of 3", ok)
	}
	if !l.allow(netip.MustParseAddr("2001:db8:1:3::1"), now) || !l.allow(netip.MustParseAddr("198.51.100.1"), now) {
		t.Fatal("another /64 or an IPv4 address shares the bucket")
	}

	b := netip.MustParseAddr("3fff::").As16() // clear of the /64s above
	for i := range maxBuckets + 1000 {        // each request from a /64 of its own
		b[4], b[5], b[6], b[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		if !l.allow(netip.AddrFrom16(b), now) {
			t.Fatalf("the first request of new client %d refused", i)
		}
	}
	if n := len(l.buckets); n > maxBuckets {
		t.Fatalf("%d buckets, cap %d", n, maxBuckets)
	}
	for i := range 200 {
		if !l.allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), now.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("a new client's first request refused after the flood")
		}
	}
}

// TestEventsFromTheFuture: /events stores an event whose time is far ahead
// of the clock at the time it arrived.
func TestEventsFromTheFuture(t *testing.T) {
	h := start(t, nil)
	before := time.Now()
	body := []byte(`{"kind":"auth.login_failed","client_ip":"203.0.113.7","time":"9999-12-31T23:59:59Z"}`)
	if code, resp, _ := h.post("/events", "application/json", body, "Authorization", "Bearer "+token); code != 204 {
		t.Fatalf("%d %v", code, resp)
	}
	evs := h.events()
	if len(evs) != 1 || evs[0].Time.Before(before.Add(-time.Second)) || evs[0].Time.After(time.Now()) {
		t.Fatalf("stored %+v, want one event at its arrival", evs)
	}
	if n := testutil.ToFloat64(h.srv.m.TimeClamped); n != 1 {
		t.Errorf("time clamped counter %v, want 1", n)
	}
}
