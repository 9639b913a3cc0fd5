package csp

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-soc/vigil/event"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testMeta is the request metadata every test uses unless it says
// otherwise. The client address is IPv4-mapped to check that events carry
// it unmapped.
var testMeta = Meta{
	ClientIP:  netip.MustParseAddr("::ffff:127.0.0.1"),
	UserAgent: "request-ua/1.0",
	Received:  time.Date(2026, 11, 23, 15, 50, 23, 392_000_000, time.UTC),
}

const chromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"

// capture is one raw request a browser sent, from testdata/chromium or
// testdata/firefox.
type capture struct {
	contentType string
	userAgent   string
	body        []byte
}

// readCapture reads testdata/name ("chromium/01-001.http"): request line,
// headers, blank line, body.
func readCapture(tb testing.TB, name string) capture {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	head, body, ok := bytes.Cut(b, []byte("\n\n"))
	if !ok {
		tb.Fatalf("%s: no blank line after the headers", name)
	}
	var c capture
	for _, line := range strings.Split(string(head), "\n")[1:] {
		k, v, _ := strings.Cut(line, ": ")
		switch strings.ToLower(k) {
		case "content-type":
			c.contentType = v
		case "user-agent":
			c.userAgent = v
		}
	}
	c.body = body
	return c
}

// captures lists the POST captures of every browser ("chromium/01-001.http"),
// those the default filter drops (named noise-*) too if noise.
func captures(tb testing.TB, noise bool) []string {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*", "*.http"))
	if err != nil || len(names) == 0 {
		tb.Fatalf("no captures: %v", err)
	}
	var out []string
	for _, n := range names {
		if noise || !strings.HasPrefix(filepath.Base(n), "noise-") {
			out = append(out, filepath.ToSlash(strings.TrimPrefix(n, "testdata"+string(filepath.Separator))))
		}
	}
	return out
}

// mustParse parses with the capture's headers and fails the test on error.
func mustParse(t *testing.T, c capture, f *Filter) Result {
	t.Helper()
	meta := testMeta
	meta.UserAgent = c.userAgent
	res, err := Parse(c.contentType, c.body, meta, f)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return res
}

// checkEvent checks what every CSP event must satisfy.
func checkEvent(t *testing.T, ev *event.Event) {
	t.Helper()
	if ev.Source != event.SourceCSP || ev.Dataset != "csp.violation" || ev.Action != "csp-violation" {
		t.Errorf("Source/Dataset/Action = %q/%q/%q", ev.Source, ev.Dataset, ev.Action)
	}
	if ev.CSP == nil {
		t.Fatal("CSP is nil")
	}
	if ev.Status != 0 || ev.BodyBytes != -1 {
		t.Errorf("Status, BodyBytes = %d, %d; want 0, -1", ev.Status, ev.BodyBytes)
	}
	if ev.Target != ev.CSP.DocumentURI {
		t.Errorf("Target %q != DocumentURI %q", ev.Target, ev.CSP.DocumentURI)
	}
	if ev.SourceIP.Is4In6() {
		t.Errorf("SourceIP %v is IPv4-mapped", ev.SourceIP)
	}
	wantOutcome := map[string]string{"enforce": "failure", "report": "unknown"}[ev.CSP.Disposition]
	if wantOutcome == "" || ev.Outcome != wantOutcome {
		t.Errorf("Disposition %q, Outcome %q", ev.CSP.Disposition, ev.Outcome)
	}
	if len(ev.ID) != 64 || strings.Trim(ev.ID, "0123456789abcdef") != "" {
		t.Errorf("ID %q is not hex sha256", ev.ID)
	}
	if ev.CSP.Format != FormatReportURI && ev.CSP.Format != FormatReportingAPI {
		t.Errorf("Format %q", ev.CSP.Format)
	}
	if ev.CSP.BlockedOrigin == "" {
		t.Error("BlockedOrigin is empty")
	}
}
