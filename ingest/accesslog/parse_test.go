package accesslog

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-soc/vigil/event"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// want is the expected content of a parsed Event.
type want struct {
	time      string // "02/Jan/2006:15:04:05 -0700", or RFC 3339
	ip        string
	user      string
	method    string
	target    string
	path      string
	query     string
	version   string
	status    int
	bytes     int64
	referrer  string
	userAgent string
	dataset   string
}

func (w want) check(t *testing.T, ev *event.Event) {
	t.Helper()
	wantTime, err := time.Parse("02/Jan/2006:15:04:05 -0700", w.time)
	if err != nil {
		wantTime, err = time.Parse(time.RFC3339Nano, w.time)
		if err != nil {
			t.Fatalf("bad test time %q", w.time)
		}
	}
	if !ev.Time.Equal(wantTime) {
		t.Errorf("Time = %v, want %v", ev.Time, wantTime)
	}
	_, gotOff := ev.Time.Zone()
	if _, wantOff := wantTime.Zone(); gotOff != wantOff {
		t.Errorf("Time offset = %d, want %d", gotOff, wantOff)
	}
	if got := ev.SourceIP.String(); got != w.ip {
		t.Errorf("SourceIP = %s, want %s", got, w.ip)
	}
	str := func(name, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	str("UserName", ev.UserName, w.user)
	str("Method", ev.Method, w.method)
	str("Target", ev.Target, w.target)
	str("Path", ev.Path, w.path)
	str("Query", ev.Query, w.query)
	str("HTTPVersion", ev.HTTPVersion, w.version)
	str("Referrer", ev.Referrer, w.referrer)
	str("UserAgent", ev.UserAgent, w.userAgent)
	str("Dataset", ev.Dataset, w.dataset)
	str("Source", ev.Source, event.SourceAccess)
	str("Outcome", ev.Outcome, event.OutcomeFromStatus(w.status))
	str("ID", ev.ID, "")
	if ev.Status != w.status {
		t.Errorf("Status = %d, want %d", ev.Status, w.status)
	}
	if ev.BodyBytes != w.bytes {
		t.Errorf("BodyBytes = %d, want %d", ev.BodyBytes, w.bytes)
	}
}

const ua = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		line   string
		want   want
	}{
		{
			name:   "nginx combined ipv4",
			format: FormatNginxCombined,
			line:   `203.0.113.7 - - [10/Oct/2026:13:55:36 +0200] "GET /index.html HTTP/1.1" 200 612 "-" "` + ua + `"`,
			want: want{time: "10/Oct/2026:13:55:36 +0200", ip: "203.0.113.7", method: "GET", target: "/index.html",
				path: "/index.html", version: "1.1", status: 200, bytes: 612, userAgent: ua, dataset: "nginx.access"},
		},
		{
			name:   "nginx combined ipv6 http2 query",
			format: FormatNginxCombined,
			line:   `2001:db8::1 - - [10/Oct/2026:13:55:37 +0200] "GET /api/v1/items?page=2&sort=desc HTTP/2.0" 200 2048 "https://example.com/" "curl/8.5.0"`,
			want: want{time: "10/Oct/2026:13:55:37 +0200", ip: "2001:db8::1", method: "GET", target: "/api/v1/items?page=2&sort=desc",
				path: "/api/v1/items", query: "page=2&sort=desc", version: "2.0", status: 200, bytes: 2048,
				referrer: "https://example.com/", userAgent: "curl/8.5.0", dataset: "nginx.access"},
		},
		{
			name:   "ipv4-mapped ipv6 is unmapped",
			format: FormatNginxCombined,
			line:   `::ffff:192.0.2.1 - - [10/Oct/2026:13:55:37 +0000] "GET / HTTP/1.1" 200 2 "-" "-"`,
			want: want{time: "10/Oct/2026:13:55:37 +0000", ip: "192.0.2.1", method: "GET", target: "/", path: "/",
				version: "1.1", status: 200, bytes: 2, dataset: "nginx.access"},
		},
		{
			name:   "http 1.0 with user, empty query, negative offset",
			format: FormatNginxCombined,
			line:   `198.51.100.23 - alice [01/Jan/2027:00:00:00 -0930] "HEAD /admin? HTTP/1.0" 401 0 "-" "python-requests/2.31.0"`,
			want: want{time: "01/Jan/2027:00:00:00 -0930", ip: "198.51.100.23", user: "alice", method: "HEAD", target: "/admin?",
				path: "/admin", version: "1.0", status: 401, bytes: 0, userAgent: "python-requests/2.31.0", dataset: "nginx.access"},
		},
		{
			name:   "http 0.9 style request without version",
			format: FormatNginxCombined,
			line:   `192.0.2.9 - - [29/Feb/2028:23:59:59 +0100] "GET /old" 200 10 "-" "-"`,
			want: want{time: "29/Feb/2028:23:59:59 +0100", ip: "192.0.2.9", method: "GET", target: "/old", path: "/old",
				status: 200, bytes: 10, dataset: "nginx.access"},
		},
		{
			name:   "target with a space (old nginx)",
			format: FormatNginxCombined,
			line:   `192.0.2.9 - - [10/Oct/2026:13:55:36 +0200] "GET /a b?c d HTTP/1.1" 400 10 "-" "-"`,
			want: want{time: "10/Oct/2026:13:55:36 +0200", ip: "192.0.2.9", method: "GET", target: "/a b?c d", path: "/a b",
				query: "c d", version: "1.1", status: 400, bytes: 10, dataset: "nginx.access"},
		},
		{
			name:   "user name with a space",
			format: FormatNginxCombined,
			line:   `192.0.2.9 - john doe [10/Oct/2026:13:55:36 +0200] "GET / HTTP/1.1" 200 10 "-" "-"`,
			want: want{time: "10/Oct/2026:13:55:36 +0200", ip: "192.0.2.9", user: "john doe", method: "GET", target: "/", path: "/",
				version: "1.1", status: 200, bytes: 10, dataset: "nginx.access"},
		},
		{
			name:   "nginx escapes",
			format: FormatNginxCombined,
			line:   `192.0.2.44 - b\x22ob [10/Oct/2026:13:55:39 +0200] "GET /?q=\x22x\x22\x5C HTTP/1.1" 200 5120 "https://example.com/?q=\x22x\x22" "sqlmap/1.8 \x5Cx \xE2\x82\xAC"`,
			want: want{time: "10/Oct/2026:13:55:39 +0200", ip: "192.0.2.44", user: `b"ob`, method: "GET", target: `/?q="x"\`,
				path: "/", query: `q="x"\`, version: "1.1", status: 200, bytes: 5120, referrer: `https://example.com/?q="x"`,
				userAgent: `sqlmap/1.8 \x €`, dataset: "nginx.access"},
		},
		{
			name:   "nginx main with forwarded-for",
			format: FormatNginxMain,
			line:   `10.0.0.2 - - [10/Oct/2026:13:55:37 +0200] "GET /health HTTP/1.1" 200 2 "-" "kube-probe/1.31" "198.51.100.1, 10.0.0.3"`,
			want: want{time: "10/Oct/2026:13:55:37 +0200", ip: "10.0.0.2", method: "GET", target: "/health", path: "/health",
				version: "1.1", status: 200, bytes: 2, userAgent: "kube-probe/1.31", dataset: "nginx.access"},
		},
		{
			name:   "nginx main with forwarded-for and more fields",
			format: FormatNginxMain,
			line:   `10.0.0.2 - - [10/Oct/2026:13:55:37 +0200] "GET /health HTTP/1.1" 200 2 "-" "kube-probe/1.31" "-" 0.004 "10.0.0.5:8080" rt=0.004`,
			want: want{time: "10/Oct/2026:13:55:37 +0200", ip: "10.0.0.2", method: "GET", target: "/health", path: "/health",
				version: "1.1", status: 200, bytes: 2, userAgent: "kube-probe/1.31", dataset: "nginx.access"},
		},
		{
			name:   "combined with trailing fields",
			format: FormatNginxCombined,
			line:   `10.0.0.2 - - [10/Oct/2026:13:55:37 +0200] "GET / HTTP/1.1" 502 157 "-" "curl/8" 0.010 0.009 "10.0.0.5:8080, 10.0.0.6:8080" "\x22quoted\x22"` + "\r\n",
			want: want{time: "10/Oct/2026:13:55:37 +0200", ip: "10.0.0.2", method: "GET", target: "/", path: "/",
				version: "1.1", status: 502, bytes: 157, userAgent: "curl/8", dataset: "nginx.access"},
		},
		{
			name:   "apache combined",
			format: FormatApacheCombined,
			line:   `192.0.2.10 - frank [10/Oct/2026:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"`,
			want: want{time: "10/Oct/2026:13:55:36 -0700", ip: "192.0.2.10", user: "frank", method: "GET", target: "/apache_pb.gif",
				path: "/apache_pb.gif", version: "1.0", status: 200, bytes: 2326, referrer: "http://www.example.com/start.html",
				userAgent: "Mozilla/4.08 [en] (Win98; I ;Nav)", dataset: "apache.access"},
		},
		{
			name:   "apache dash bytes and escapes",
			format: FormatApacheCombined,
			line:   `192.0.2.12 identd - [10/Oct/2026:13:55:37 -0700] "GET /cgi-bin/t.cgi?x=\"y\" HTTP/1.1" 304 - "-" "Mozilla/5.0 \"quoted\" \\back\\ \x01\n\t\q"`,
			want: want{time: "10/Oct/2026:13:55:37 -0700", ip: "192.0.2.12", method: "GET", target: `/cgi-bin/t.cgi?x="y"`,
				path: "/cgi-bin/t.cgi", query: `x="y"`, version: "1.1", status: 304, bytes: -1,
				userAgent: "Mozilla/5.0 \"quoted\" \\back\\ \x01\n\t\\q", dataset: "apache.access"},
		},
		{
			name:   "apache escape at end of field",
			format: FormatApacheCombined,
			line:   `192.0.2.12 - - [10/Oct/2026:13:55:37 -0700] "GET / HTTP/1.1" 200 1 "\"" "ends with backslash\\"`,
			want: want{time: "10/Oct/2026:13:55:37 -0700", ip: "192.0.2.12", method: "GET", target: "/", path: "/",
				version: "1.1", status: 200, bytes: 1, referrer: `"`, userAgent: `ends with backslash\`, dataset: "apache.access"},
		},
		{
			name:   "json strings",
			format: FormatNginxJSON,
			line:   `{"time_local":"10/Oct/2026:13:55:36 +0200","remote_addr":"203.0.113.7","remote_user":"","request":"GET /index.html?a=1 HTTP/1.1","status":"200","body_bytes_sent":"612","http_referer":"","http_user_agent":"Mozilla/5.0"}`,
			want: want{time: "10/Oct/2026:13:55:36 +0200", ip: "203.0.113.7", method: "GET", target: "/index.html?a=1",
				path: "/index.html", query: "a=1", version: "1.1", status: 200, bytes: 612, userAgent: "Mozilla/5.0", dataset: "nginx.access"},
		},
		{
			name:   "json numbers iso time split request escapes unknown keys",
			format: FormatNginxJSON,
			line:   `{"upstream":{"addr":"10.0.0.5:8080","status":[401,null,true,{"a":-1.5e3}]},"time_iso8601":"2026-10-10T13:55:37+02:00","remote_addr":"2001:db8::2","remote_user":"b\u00f6b","request_method":"POST","request_uri":"/api/login?next=%2F","server_protocol":"HTTP/2.0","status":401,"body_bytes_sent":45,"http_referer":"https:\/\/example.com\/","http_user_agent":"M \"q\" \\ \b\f\n\r\t \u00e9 \u20ac \ud83d\ude00 \ud800x","request_time":0.004}`,
			want: want{time: "2026-10-10T13:55:37+02:00", ip: "2001:db8::2", user: "böb", method: "POST", target: "/api/login?next=%2F",
				path: "/api/login", query: "next=%2F", version: "2.0", status: 401, bytes: 45, referrer: "https://example.com/",
				userAgent: "M \"q\" \\ \b\f\n\r\t é € 😀 \uFFFDx", dataset: "nginx.access"},
		},
		{
			name:   "json msec mapped ip null user white space",
			format: FormatNginxJSON,
			line:   ` { "msec" : 1791633337.123 , "remote_addr" : "::ffff:198.51.100.9" , "remote_user" : null , "request" : "GET / HTTP/1.1" , "status" : "200" } `,
			want: want{time: time.Unix(1791633337, 123e6).UTC().Format(time.RFC3339Nano), ip: "198.51.100.9", method: "GET",
				target: "/", path: "/", version: "1.1", status: 200, bytes: -1, dataset: "nginx.access"},
		},
		{
			name:   "json iso time with Z and fraction",
			format: FormatNginxJSON,
			line:   `{"time_iso8601":"2026-10-10T11:55:37.5Z","remote_addr":"192.0.2.1","request":"DELETE /x HTTP/3.0","status":"204","body_bytes_sent":"-"}`,
			want: want{time: "2026-10-10T11:55:37.5Z", ip: "192.0.2.1", method: "DELETE", target: "/x", path: "/x",
				version: "3.0", status: 204, bytes: -1, dataset: "nginx.access"},
		},
		{
			name:   "auto picks json",
			format: FormatUnknown,
			line:   `{"time_local":"10/Oct/2026:13:55:36 +0200","remote_addr":"203.0.113.7","request":"GET / HTTP/1.1","status":"200"}`,
			want: want{time: "10/Oct/2026:13:55:36 +0200", ip: "203.0.113.7", method: "GET", target: "/", path: "/",
				version: "1.1", status: 200, bytes: -1, dataset: "nginx.access"},
		},
		{
			name:   "auto picks text",
			format: FormatUnknown,
			line:   `203.0.113.7 - - [10/Oct/2026:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-"`,
			want: want{time: "10/Oct/2026:13:55:36 +0200", ip: "203.0.113.7", method: "GET", target: "/", path: "/",
				version: "1.1", status: 200, bytes: 1, dataset: "nginx.access"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewParser(tt.format)
			ev := event.Event{ID: "stale", UserID: "stale"}
			if err := p.Parse([]byte(tt.line), &ev); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.want.check(t, &ev)
			if ev.UserID != "" {
				t.Errorf("UserID = %q, want it reset", ev.UserID)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const ok = `203.0.113.9 - - [10/Oct/2026:13:56:01 +0200] "GET / HTTP/1.1" 200 612 "-" "-"`
	tests := []struct {
		name   string
		format Format
		line   string
		reason string
	}{
		{"empty", FormatNginxCombined, "", ReasonEmpty},
		{"blank", FormatNginxJSON, " \t\r\n", ReasonEmpty},
		{"too long", FormatNginxCombined, ok + ` "` + strings.Repeat("x", MaxLineBytes) + `"`, ReasonTooLong},
		{"unquoted request", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:04 +0200] GET / HTTP/1.1 400 157 "-" "-"`, ReasonMalformed},
		{"unix socket", FormatNginxCombined, `unix: - - [10/Oct/2026:13:56:05 +0200] "GET / HTTP/1.1" 200 612 "-" "-"`, ReasonBadIP},
		{"host name", FormatApacheCombined, `www.example.com - - [10/Oct/2026:13:56:05 +0200] "GET / HTTP/1.1" 200 612 "-" "-"`, ReasonBadIP},
		{"json bad ip", FormatNginxJSON, `{"msec":"1","remote_addr":"","request":"GET / HTTP/1.1","status":"200"}`, ReasonBadIP},
		{"feb 30", FormatNginxCombined, `203.0.113.9 - - [30/Feb/2026:13:56:06 +0200] "GET / HTTP/1.1" 200 612 "-" "-"`, ReasonBadTime},
		{"bad month", FormatNginxCombined, `203.0.113.9 - - [10/Okt/2026:13:56:06 +0200] "GET / HTTP/1.1" 200 612 "-" "-"`, ReasonBadTime},
		{"hour 24", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:24:00:00 +0200] "GET / HTTP/1.1" 200 612 "-" "-"`, ReasonBadTime},
		{"bad zone", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:06 0200] "GET / HTTP/1.1" 200 612 "-" "-"`, ReasonBadTime},
		{"no brackets", FormatNginxCombined, `203.0.113.9 - - 10/Oct/2026:13:56:06 "GET / HTTP/1.1" 200 612 "-" "-"`, ReasonBadTime},
		{"json bad iso", FormatNginxJSON, `{"time_iso8601":"2026-10-10 13:55:37","remote_addr":"192.0.2.1","request":"GET / HTTP/1.1","status":"200"}`, ReasonBadTime},
		{"json bad msec", FormatNginxJSON, `{"msec":"17e9","remote_addr":"192.0.2.1","request":"GET / HTTP/1.1","status":"200"}`, ReasonBadTime},
		{"status 2000", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:07 +0200] "GET / HTTP/1.1" 2000 612 "-" "-"`, ReasonBadStatus},
		{"status 099", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:07 +0200] "GET / HTTP/1.1" 099 612 "-" "-"`, ReasonBadStatus},
		{"json status float", FormatNginxJSON, `{"msec":"1","remote_addr":"192.0.2.1","request":"GET / HTTP/1.1","status":200.0}`, ReasonBadStatus},
		{"json trailing comma", FormatNginxJSON, `{"msec":"1","remote_addr":"192.0.2.1","request":"GET / HTTP/1.1","status":200,}`, ReasonBadJSON},
		{"json missing status", FormatNginxJSON, `{"msec":"1","remote_addr":"192.0.2.1","request":"GET / HTTP/1.1"}`, ReasonBadJSON},
		{"json missing time", FormatNginxJSON, `{"remote_addr":"192.0.2.1","request":"GET / HTTP/1.1","status":"200"}`, ReasonBadJSON},
		{"json bad escape", FormatNginxJSON, `{"msec":"1","remote_addr":"192.0.2.1","request":"GET /\q HTTP/1.1","status":"200"}`, ReasonBadJSON},
		{"json object value", FormatNginxJSON, `{"msec":"1","remote_addr":{"a":1},"request":"GET / HTTP/1.1","status":"200"}`, ReasonBadJSON},
		{"json two objects", FormatNginxJSON, `{"msec":"1","remote_addr":"192.0.2.1","request":"GET / HTTP/1.1","status":"200"}{}`, ReasonBadJSON},
		{"json deep", FormatNginxJSON, `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, ReasonBadJSON},
		{"json is text", FormatNginxJSON, ok, ReasonBadJSON},
		{"json truncated", FormatNginxJSON, `{"msec":"1","remote_addr":"192.0.2.1","request":"GET / HTTP/1.1","status":"20`, ReasonTruncated},
		{"json truncated literal", FormatNginxJSON, `{"msec":"1","x":nu`, ReasonTruncated},
		{"truncated in ua", FormatNginxCombined, ok[:len(ok)-1], ReasonTruncated},
		{"truncated main", FormatNginxMain, ok, ReasonTruncated},
		{"truncated trailing field", FormatNginxCombined, ok + ` 0.004 "10.0.0.5:80`, ReasonTruncated},
		{"bad bytes", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:07 +0200] "GET / HTTP/1.1" 200 6x2 "-" "-"`, ReasonMalformed},
		{"unquoted referrer", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:07 +0200] "GET / HTTP/1.1" 200 612 - "-"`, ReasonMalformed},
		{"junk after ua", FormatNginxCombined, ok + `x`, ReasonMalformed},
		{"syslog line", FormatNginxCombined, `Oct 10 13:56:10 web1 nginx[1234]: worker process exited`, ReasonBadIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev event.Event
			err := NewParser(tt.format).Parse([]byte(tt.line), &ev)
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("Parse = %v, want a *LineError", err)
			}
			if le.Reason != tt.reason {
				t.Fatalf("Reason = %q (%v), want %q", le.Reason, err, tt.reason)
			}
			if !slices.Contains(Reasons(), le.Reason) {
				t.Errorf("Reason %q not in Reasons()", le.Reason)
			}
		})
	}
}

// TestParseProbe checks that a sound line recording a request the server
// refused before it was HTTP yields an event: the rest of the line, no
// request fields, the probe action and the request as logged.
func TestParseProbe(t *testing.T) {
	tests := []struct {
		name    string
		format  Format
		line    string
		action  string
		message string
	}{
		{"tls handshake", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:01 +0200] "\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03\xA5\x1B" 400 157 "-" "-"`, ActionTLSHandshake, `\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03\xA5\x1B`},
		{"tls handshake json", FormatNginxJSON, `{"time_local":"10/Oct/2026:13:55:39 +0200","remote_addr":"203.0.113.9","request":"\u0016\u0003\u0001\u0002\u0000","status":"400"}`, ActionTLSHandshake, `\x16\x03\x01\x02\x00`},
		{"no request dash", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:02 +0200] "-" 400 0 "-" "-"`, ActionNoRequest, ""},
		{"no request empty", FormatApacheCombined, `203.0.113.9 - - [10/Oct/2026:13:56:02 +0200] "" 408 - "-" "-"`, ActionNoRequest, ""},
		{"no request json split", FormatNginxJSON, `{"time_local":"10/Oct/2026:13:55:39 +0200","remote_addr":"203.0.113.9","request_method":"","request_uri":"","status":"400"}`, ActionNoRequest, ""},
		{"binary method", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:04 +0200] "\x05\x01\x00 x" 400 157 "-" "-"`, ActionBadRequest, `\x05\x01\x00 x`},
		{"ssh banner", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:04 +0200] "SSH-2.0-Go" 400 157 "-" "-"`, ActionBadRequest, "SSH-2.0-Go"},
		{"method without target", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:04 +0200] "GET  HTTP/1.1" 400 157 "-" "-"`, ActionBadRequest, "GET  HTTP/1.1"},
		{"bad version", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:04 +0200] "GET / HTTP/x" 400 157 "-" "-"`, ActionBadRequest, "GET / HTTP/x"},
		{"bad json protocol", FormatNginxJSON, `{"msec":"1","remote_addr":"192.0.2.1","request_method":"GET","request_uri":"/","server_protocol":"SPDY","status":"400"}`, ActionBadRequest, "GET / SPDY"},
		{"masscan", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:01 +0200] "\x16\x03\x01\x02\x00" 400 157 "-" "masscan/1.3"`, ActionTLSHandshake, `\x16\x03\x01\x02\x00`},
		{"text kept, clipped whole", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:01 +0200] "` + strings.Repeat("é", 127) + `\x01\x02" 400 157 "-" "-"`, ActionBadRequest, strings.Repeat("é", 127)},
		{"long garbage clipped", FormatNginxCombined, `203.0.113.9 - - [10/Oct/2026:13:56:01 +0200] "` + strings.Repeat("A", 1000) + `" 400 157 "-" "-"`, ActionBadRequest, strings.Repeat("A", MaxProbeRequestBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev event.Event
			if err := NewParser(tt.format).Parse([]byte(tt.line), &ev); err != nil {
				t.Fatalf("Parse = %v, want a probe event", err)
			}
			if ev.Action != tt.action || ev.Message != tt.message {
				t.Errorf("action, message = %q, %q; want %q, %q", ev.Action, ev.Message, tt.action, tt.message)
			}
			if !ev.SourceIP.IsValid() || ev.Status < 400 || ev.Time.IsZero() {
				t.Errorf("event lost the rest of the line: %+v", ev)
			}
			if ev.Method != "" || ev.Target != "" || ev.Path != "" || ev.Query != "" || ev.HTTPVersion != "" {
				t.Errorf("event has request fields: %+v", ev)
			}
		})
	}
	// The parser is reused: a sound line after a probe has no probe fields.
	p := NewParser(FormatNginxCombined)
	var ev event.Event
	if err := p.Parse([]byte(`203.0.113.9 - - [10/Oct/2026:13:56:01 +0200] "SSH-2.0-Go" 400 157 "-" "-"`), &ev); err != nil {
		t.Fatal(err)
	}
	if err := p.Parse([]byte(`203.0.113.9 - - [10/Oct/2026:13:56:01 +0200] "GET /x HTTP/1.1" 404 153 "-" "-"`), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Action != "" || ev.Message != "" || ev.Target != "/x" {
		t.Errorf("after a probe: %+v", ev)
	}
}

// TestLineErrorOwnsDetail checks that an error does not change when the line
// does.
func TestLineErrorOwnsDetail(t *testing.T) {
	line := []byte(`www.example.com - - [10/Oct/2026:13:56:05 +0200] "GET / HTTP/1.1" 200 612 "-" "-"`)
	var ev event.Event
	err := NewParser(FormatNginxCombined).Parse(line, &ev)
	before := err.Error()
	for i := range line {
		line[i] = 'X'
	}
	if after := err.Error(); after != before || !strings.Contains(after, "www.example.com") {
		t.Errorf("error changed with the line: %q, then %q", before, after)
	}
}

// TestTruncatedAnywhere cuts every sample line at every byte: each prefix
// must be reported as truncated (sample lines have no unquoted trailing field,
// the only place a cut can leave a valid line).
func TestTruncatedAnywhere(t *testing.T) {
	for _, f := range []Format{FormatNginxCombined, FormatNginxMain, FormatApacheCombined, FormatNginxJSON} {
		p := NewParser(f)
		for _, line := range readLines(t, sampleFile(f)) {
			var ev event.Event
			for k := 1; k < len(line); k++ {
				cut := line[:k]
				if len(trimSpace(cut)) == 0 {
					continue
				}
				err := p.Parse(cut, &ev)
				var le *LineError
				if !errors.As(err, &le) || le.Reason != ReasonTruncated {
					t.Errorf("%s: Parse(%q) = %v, want truncated", f, cut, err)
				}
			}
		}
	}
}

// TestScratchStrings checks that fields decoded into the scratch buffer stay
// right while the buffer grows during a line, and on the next line.
func TestScratchStrings(t *testing.T) {
	long := strings.Repeat(`\x41`, 3000)
	line1 := `192.0.2.1 - us\x22er [10/Oct/2026:13:55:36 +0200] "GET /\x22a\x22?b=\x5C HTTP/1.1" 200 1 "r\x22ef" "` + long + `\x22"`
	line2 := `192.0.2.2 - - [10/Oct/2026:13:55:37 +0200] "GET /q\"r HTTP/1.1" 200 2 "-" "u\\a"`
	p := NewParser(FormatNginxCombined)
	var ev event.Event
	if err := p.Parse([]byte(line1), &ev); err != nil {
		t.Fatal(err)
	}
	wantUA := strings.Repeat("A", 3000) + `"`
	if ev.UserName != `us"er` || ev.Target != `/"a"?b=\` || ev.Path != `/"a"` || ev.Query != `b=\` || ev.Referrer != `r"ef` || ev.UserAgent != wantUA {
		t.Errorf("line 1: %+v", ev)
	}
	// Copies survive the next Parse; the views are allowed to change.
	kept := strings.Clone(ev.UserAgent)
	if err := p.Parse([]byte(line2), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Target != `/q"r` || ev.UserAgent != `u\a` || kept != wantUA {
		t.Errorf("line 2: %+v", ev)
	}
}

// TestAllocs checks the happy path allocates nothing once the scratch buffer
// has grown, including for lines with escapes and for time cache misses.
func TestAllocs(t *testing.T) {
	for _, f := range []Format{FormatNginxCombined, FormatNginxMain, FormatApacheCombined, FormatNginxJSON, FormatUnknown} {
		p := NewParser(f)
		var ev event.Event
		var lines [][]byte
		for _, line := range readLines(t, sampleFile(f)) {
			if p.Parse(line, &ev) == nil {
				lines = append(lines, line)
			}
		}
		i := 0
		allocs := testing.AllocsPerRun(200, func() {
			if err := p.Parse(lines[i%len(lines)], &ev); err != nil {
				t.Fatal(err)
			}
			i++
		})
		t.Logf("%s: %d lines, %.2f allocations per line", f, len(lines), allocs)
		if allocs != 0 {
			t.Errorf("%s: %.2f allocations per line, want 0", f, allocs)
		}
	}
}

func TestParseLocalMatchesTimePackage(t *testing.T) {
	var c timeCache
	start := time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC)
	for i := range 5000 {
		tm := start.Add(time.Duration(i) * 7919 * time.Minute).In(time.FixedZone("", (i%57-28)*1800))
		s := tm.Format("02/Jan/2006:15:04:05 -0700")
		got, ok := c.parseLocal(s)
		if !ok || !got.Equal(tm) {
			t.Fatalf("parseLocal(%q) = %v, %v; want %v", s, got, ok, tm)
		}
		iso := tm.Format(time.RFC3339)
		if got, ok := c.parseISO(iso); !ok || !got.Equal(tm) {
			t.Fatalf("parseISO(%q) = %v, %v; want %v", iso, got, ok, tm)
		}
		if got, ok := c.parseLocal(s); !ok || !got.Equal(tm) { // from the cache
			t.Fatalf("cached parseLocal(%q) = %v, %v", s, got, ok)
		}
	}
}

func TestFormatNames(t *testing.T) {
	for _, f := range []Format{FormatUnknown, FormatNginxCombined, FormatNginxMain, FormatApacheCombined, FormatNginxJSON} {
		got, err := ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f.String(), got, err)
		}
	}
	if f, err := ParseFormat("auto"); err != nil || f != FormatUnknown {
		t.Errorf("ParseFormat(auto) = %v, %v", f, err)
	}
	if _, err := ParseFormat("ngnix"); err == nil || !strings.Contains(err.Error(), `"ngnix"`) {
		t.Errorf("ParseFormat(ngnix) error = %v, want it to name the value", err)
	}
	if got := Format(42).String(); got != "Format(42)" {
		t.Errorf("Format(42).String() = %q", got)
	}
	for f, want := range map[Format]string{
		FormatNginxCombined: "nginx.access", FormatNginxMain: "nginx.access", FormatNginxJSON: "nginx.access",
		FormatApacheCombined: "apache.access", FormatUnknown: "",
	} {
		if got := f.Dataset(); got != want {
			t.Errorf("%v.Dataset() = %q, want %q", f, got, want)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	junk, probes := readLines(t, "junk.log"), readLines(t, "probes.log")
	tests := []struct {
		name  string
		lines [][]byte
		want  Format
	}{
		{"nginx combined", readLines(t, "nginx-combined.log"), FormatNginxCombined},
		{"nginx main", readLines(t, "nginx-main.log"), FormatNginxMain},
		{"apache combined", readLines(t, "apache-combined.log"), FormatApacheCombined},
		{"nginx json", readLines(t, "nginx-json.log"), FormatNginxJSON},
		{"nginx combined with junk", slices.Concat(junk[:6], readLines(t, "nginx-combined.log")[:3], junk[6:]), FormatNginxCombined},
		{"apache with junk", slices.Concat(readLines(t, "apache-combined.log")[:2], junk), FormatApacheCombined},
		{"json with junk", slices.Concat(junk, readLines(t, "nginx-json.log")[:2]), FormatNginxJSON},
		{"mostly json", slices.Concat(readLines(t, "nginx-json.log"), readLines(t, "nginx-combined.log")[:1]), FormatNginxJSON},
		{"mostly text", slices.Concat(readLines(t, "nginx-json.log")[:1], readLines(t, "nginx-main.log")), FormatNginxMain},
		{"junk only", junk, FormatUnknown},
		{"probes only", probes, FormatUnknown},
		{"apache with probes", slices.Concat(probes, readLines(t, "apache-combined.log")[:2]), FormatApacheCombined},
		{"nothing", nil, FormatUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DetectFormat(tt.lines); got != tt.want {
				t.Errorf("DetectFormat = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSampleFiles parses every line of the sample files.
func TestSampleFiles(t *testing.T) {
	for _, f := range []Format{FormatNginxCombined, FormatNginxMain, FormatApacheCombined, FormatNginxJSON} {
		p, auto := NewParser(f), NewParser(FormatUnknown)
		for _, line := range readLines(t, sampleFile(f)) {
			var ev event.Event
			err := p.Parse(line, &ev)
			if err != nil {
				t.Errorf("%s: Parse(%q): %v", f, line, err)
			}
			if f != FormatNginxMain {
				if err2 := auto.Parse(line, &ev); (err == nil) != (err2 == nil) {
					t.Errorf("auto: Parse(%q) = %v, %s parser said %v", line, err2, f, err)
				}
			}
		}
	}
	p := NewParser(FormatUnknown)
	for _, line := range readLines(t, "junk.log") {
		var ev event.Event
		var le *LineError
		if err := p.Parse(line, &ev); !errors.As(err, &le) {
			t.Errorf("junk: Parse(%q) = %v, want a *LineError", line, err)
		}
	}
	for _, line := range readLines(t, "probes.log") {
		var ev event.Event
		if err := p.Parse(line, &ev); err != nil || ev.Action == "" {
			t.Errorf("probes: Parse(%q) = %v, action %q; want a probe event", line, err, ev.Action)
		}
	}
}

func sampleFile(f Format) string {
	if f == FormatUnknown {
		return "nginx-json.log"
	}
	return f.String() + ".log"
}

// readLines returns the lines of a file under testdata, without newlines.
func readLines(tb testing.TB, name string) [][]byte {
	tb.Helper()
	fh, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer fh.Close()
	var lines [][]byte
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return lines
}
