// Package e2e holds end-to-end tests that drive Vigil with real outside
// programs: a headless Chromium posting CSP reports.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-soc/vigil/app"
	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/internal/redistest"
	"github.com/vigil-soc/vigil/internal/tlstest"
)

// chromium finds Debian's Chromium or fails saying how to install it.
func chromium(t *testing.T) string {
	for _, name := range []string{os.Getenv("VIGIL_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install it with `apt-get install -y chromium` (or set VIGIL_CHROMIUM to a Chrome binary)")
	return ""
}

// page serves a page that causes three violations: an inline script, a
// script from another origin, and eval() in an allowed script.
func page(csp string, extra http.Header, external string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		for k, v := range extra {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><html><head><title>csp</title></head><body>
<script>document.title = "inline ran";</script>
<script src="%s/x.js"></script>
<script src="/self.js"></script>
</body></html>`, external)
	})
	mux.HandleFunc("/self.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/javascript")
		io.WriteString(w, `try { eval("1+1"); } catch (e) {}`)
	})
	mux.HandleFunc("/x.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/javascript")
		io.WriteString(w, `window.x = 1;`)
	})
	return mux
}

func serve(t *testing.T, h http.Handler, certFile, keyFile string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	scheme := "http"
	go func() {
		if certFile != "" {
			_ = srv.ServeTLS(ln, certFile, keyFile)
		} else {
			_ = srv.Serve(ln)
		}
	}()
	if certFile != "" {
		scheme = "https"
	}
	t.Cleanup(func() { srv.Close() })
	return scheme + "://" + ln.Addr().String()
}

// browse runs headless Chromium on url until stop is closed.
func browse(t *testing.T, bin, spki, url string) (stop func()) {
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--ignore-certificate-errors-spki-list="+spki, "--short-reporting-delay",
		"--remote-debugging-port=0", url)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.String())
		}
	}
}

// TestChromiumCSPReports: (a) a plain-HTTP page with report-uri only and
// (b) an HTTPS page with Reporting-Endpoints + report-to pointing at Vigil's
// HTTPS listener on another origin (so Chromium makes a CORS preflight).
// Each triggers inline, external-script and eval violations; the normalised
// events must arrive on JetStream and the counters rise on /metrics.
func TestChromiumCSPReports(t *testing.T) {
	bin := chromium(t)
	rs := redistest.Start(t)
	certFile, keyFile, spki := tlstest.SelfSigned(t)

	a := runVigil(t, rs, func(c *app.Config) {
		c.Listen, c.ListenTLS = "127.0.0.1:0", "127.0.0.1:0"
		c.TLSCert, c.TLSKey = certFile, keyFile
	})
	vigilHTTP, vigilHTTPS, admin := addr(t, a, "http"), addr(t, a, "https"), addr(t, a, "admin")
	other := serve(t, page("", nil, ""), "", "") // the "external" script origin

	plain := serve(t, page("default-src 'self'; script-src 'self'; report-uri http://"+vigilHTTP+"/csp-report", nil, other), "", "")
	secure := serve(t, page("default-src 'self'; script-src 'self'; report-to vigil",
		http.Header{"Reporting-Endpoints": {`vigil="https://` + vigilHTTPS + `/reports"`}}, other), certFile, keyFile)

	for _, tc := range []struct {
		name, url, format string
	}{
		{"report-uri over HTTP", plain + "/page", "report-uri"},
		{"Reporting API over HTTPS, cross-origin", secure + "/page", "reporting-api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stop := browse(t, bin, spki, tc.url)
			defer stop()
			want := map[string]bool{"inline": false, "eval": false, strings.TrimPrefix(other, "http://"): false}
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				for _, ev := range cspEvents(t, a) {
					if ev.CSP.Format != tc.format || !strings.HasPrefix(ev.CSP.DocumentURI, tc.url) {
						continue
					}
					for k := range want {
						if ev.CSP.BlockedOrigin == k || strings.HasSuffix(ev.CSP.BlockedOrigin, "//"+k) {
							want[k] = true
						}
					}
				}
				if want["inline"] && want["eval"] && want[strings.TrimPrefix(other, "http://")] {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			for k, seen := range want {
				if !seen {
					t.Errorf("no %s violation from %s arrived on the bus", k, tc.format)
				}
			}
			metric := fmt.Sprintf(`vigil_ingest_events_total{format=%q,source="csp"}`, tc.format)
			if n := scrape(t, admin, metric); n < 3 {
				t.Errorf("%s = %v, want >= 3", metric, n)
			}
			if tc.format == "reporting-api" {
				if n := scrape(t, admin, `vigil_http_preflights_total{endpoint="reports"}`); n < 1 {
					t.Errorf("no CORS preflight answered for the cross-origin Reporting API endpoint")
				}
			}
		})
	}
}

func cspEvents(t *testing.T, a *app.App) []event.Event { return busEvents(t, a, event.SourceCSP) }

// busEvents returns the events of source in VIGIL_EVENTS so far.
func busEvents(t *testing.T, a *app.App, source string) []event.Event {
	nc, err := a.Embedded().Connect("e2e")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	s, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.SubjectEvents + "." + source + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	var out []event.Event
	for {
		m, err := c.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			return out
		}
		bus.DecodeBatch(m.Data(), func(ev *event.Event) {
			e := *ev
			if ev.CSP != nil {
				cp := *ev.CSP
				e.CSP = &cp
			}
			out = append(out, e)
		})
	}
}

func scrape(t *testing.T, admin, metric string) float64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, metric+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}
