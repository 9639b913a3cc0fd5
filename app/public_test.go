package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/internal/redistest"
)

func (h *harness) publicURL() string {
	h.t.Helper()
	var srv = h.app.public.Load()
	if srv == nil {
		h.t.Fatal("public listener not started")
	}
	<-srv.Ready()
	return "http://" + srv.Addr("http").String()
}

// TestAppEventsBecomeBans: failed logins posted by the application to
// /events end as a ban; a SuspiciousOperation and a token reuse end as
// alerts.
func TestAppEventsBecomeBans(t *testing.T) {
	rs := redistest.Start(t)
	h := newHarness(t, rs, t.TempDir())
	h.start()
	url := h.publicURL() + "/events"
	now := time.Now().UTC()
	var items []string
	for i := range 12 {
		items = append(items, fmt.Sprintf(`{"kind":"auth.login_failed","time":%q,"client_ip":"203.0.113.66","user":{"name":"admin"},"path":"/api/token/"}`,
			now.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano)))
	}
	items = append(items, fmt.Sprintf(`{"kind":"django.suspicious_operation","time":%q,"client_ip":"198.51.100.8","name":"DisallowedHost"}`, now.Format(time.RFC3339Nano)))
	items = append(items, fmt.Sprintf(`{"kind":"auth.token_reuse","time":%q,"client_ip":"198.51.100.9","user":{"id":"42"},"jti":"abc"}`, now.Format(time.RFC3339Nano)))
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("["+strings.Join(items, ",")+"]"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+h.cfg.EventsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /events: %d", resp.StatusCode)
	}
	waitFor(t, 20*time.Second, "ban from app events", func() bool { return h.banTTL("203.0.113.66") > 0 })
	waitFor(t, 10*time.Second, "alerts for SuspiciousOperation and token reuse", func() bool {
		rules := map[string]bool{}
		for _, m := range streamMessages(t, h.app, bus.StreamAlerts) {
			rules[strings.TrimPrefix(m.Subject(), "vigil.alerts.")] = true
		}
		return rules["suspicious-operation"] && rules["auth-token-reuse"] && rules["auth-failure-spike"]
	})
}

// TestSyslogLinesBecomeBans: nginx sending its access log over syslog UDP.
func TestSyslogLinesBecomeBans(t *testing.T) {
	rs := redistest.Start(t)
	h := newHarness(t, rs, t.TempDir())
	h.cfg.SyslogUDP = "127.0.0.1:0"
	h.start()
	col := h.app.syslog.Load()
	<-col.Server().Ready()
	udp, _ := col.Server().Addrs()
	conn, err := net.Dial("udp", udp.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	now := time.Now()
	for _, line := range scanLines("203.0.113.77", now.UTC(), 55) {
		msg := fmt.Sprintf("<190>%s web1 nginx: %s", now.Format(time.Stamp), strings.TrimSuffix(line, "\n"))
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // a UDP burst must not overrun the socket buffer in a -race run
	}
	waitFor(t, 20*time.Second, "ban from syslog lines", func() bool { return h.banTTL("203.0.113.77") > 0 })
}

// TestPageBurstOfReports: a page with many blocked resources makes the
// browser post a report for each at once (Firefox: 80 in under a second
// for 80 blocked images, never retried); the default rate limit takes
// such a burst whole.
func TestPageBurstOfReports(t *testing.T) {
	rs := redistest.Start(t)
	h := newHarness(t, rs, t.TempDir())
	h.start()
	url := h.publicURL() + "/csp-report"
	const reports = 150
	codes := make(chan int, reports)
	var wg sync.WaitGroup
	for w := range 6 { // a browser's connections to one host
		wg.Go(func() {
			for i := w; i < reports; i += 6 {
				body := fmt.Sprintf(`{"csp-report":{"document-uri":"https://shop.example/gallery","blocked-uri":"https://img.example/%d.jpg","effective-directive":"img-src","disposition":"enforce"}}`, i)
				resp, err := http.Post(url, "application/csp-report", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}
		})
	}
	wg.Wait()
	close(codes)
	n := map[int]int{}
	for c := range codes {
		n[c]++
	}
	if n[http.StatusNoContent] != reports {
		t.Fatalf("a page's %d reports at once: answered %v, want every one 204", reports, n)
	}
}

// TestCSPReportsReachTheBus: a report posted to the public listener is on
// VIGIL_EVENTS, normalised, and counted in /metrics.
func TestCSPReportsReachTheBus(t *testing.T) {
	rs := redistest.Start(t)
	h := newHarness(t, rs, t.TempDir())
	h.start()
	body := []byte(`{"csp-report":{"document-uri":"https://shop.example/cart","blocked-uri":"https://evil.example/x.js","effective-directive":"script-src-elem","disposition":"enforce"}}`)
	resp, err := http.Post(h.publicURL()+"/csp-report", "application/csp-report", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /csp-report: %d", resp.StatusCode)
	}
	msgs := streamMessages(t, h.app, bus.StreamEvents)
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0].Subject(), "vigil.events.csp.") || !bytes.Contains(msgs[0].Data(), []byte(`"blocked_origin":"https://evil.example"`)) {
		t.Fatalf("stream holds %d messages: %v", len(msgs), msgs)
	}
	admin, _ := h.app.AdminAddr(context.Background())
	waitFor(t, 5*time.Second, "the counter on /metrics", func() bool {
		r, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(r.Body)
		return strings.Contains(buf.String(), `vigil_ingest_events_total{format="report-uri",source="csp"} 1`)
	})
}

// TestStopStoresWhatWasReceived: stopping Vigil (SIGTERM) while syslog
// lines stream in and a report's body is still on its way loses nothing it
// received: the collectors stop first, the report is answered 204, and the
// publisher stores what they queued before it stops. A restart on the same
// data directory finds every line counted as received, and the report.
func TestStopStoresWhatWasReceived(t *testing.T) {
	rs := redistest.Start(t)
	dataDir := t.TempDir()
	h := newHarness(t, rs, dataDir)
	h.cfg.SyslogTCP = "127.0.0.1:0"
	h.start()
	col := h.app.syslog.Load()
	<-col.Server().Ready()
	_, tcp := col.Server().Addrs()
	sl, err := net.Dial("tcp", tcp.String())
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	// A report whose head is sent before the stop and its body after.
	body := `{"csp-report":{"document-uri":"https://shop.example/stop","blocked-uri":"https://evil.example/stop.js","effective-directive":"script-src-elem"}}`
	rep, err := net.Dial("tcp", strings.TrimPrefix(h.publicURL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	_ = rep.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(rep, "POST /csp-report HTTP/1.1\r\nHost: x\r\nContent-Type: application/csp-report\r\nContent-Length: %d\r\n\r\n", len(body))

	now := time.Now()
	sent := make(chan int)
	go func() { // lines until the receiver closes the connection
		n := 0
		for ; ; n++ {
			line := clf("198.51.100.2", now.UTC(), "GET", fmt.Sprintf("/stop/%d", n), 200)
			if _, err := fmt.Fprintf(sl, "<190>%s web1 nginx: %s", now.Format(time.Stamp), line); err != nil {
				break
			}
		}
		sent <- n
	}()
	waitFor(t, 10*time.Second, "lines arriving", func() bool { return col.Server().Stats().Received > 2000 })
	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	time.Sleep(300 * time.Millisecond) // the stop under way
	if _, err := io.WriteString(rep, body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(rep), nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("the report finished during the stop: %v %v", resp, err)
	}
	<-stopped
	t.Logf("%d lines sent", <-sent)
	st := col.Server().Stats()
	received := int(st.Received - st.Malformed)

	h2 := newHarness(t, rs, dataDir)
	h2.start()
	lines, reports := 0, 0
	for _, m := range streamMessages(t, h2.app, bus.StreamEvents) {
		bus.DecodeBatch(m.Data(), func(ev *event.Event) {
			switch {
			case strings.HasPrefix(ev.Target, "/stop/"):
				lines++
			case ev.CSP != nil && ev.CSP.BlockedURI == "https://evil.example/stop.js":
				reports++
			}
		})
	}
	if lines != received || reports != 1 {
		t.Fatalf("stored %d lines of the %d received and %d reports, want all and 1", lines, received, reports)
	}
}
