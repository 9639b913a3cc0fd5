package syslog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// nginxLine is an access log line in nginx's combined format.
const nginxLine = `203.0.113.7 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8"`

// testZone stands for the receiver's local zone.
var testZone = time.FixedZone("receiver", 3600)

// testNow is the receiver's clock in most cases.
var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, testZone)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		now  time.Time // testNow when zero
		want Message
	}{
		{
			name: "nginx default",
			in:   "<190>Nov 23 10:00:00 web1 nginx: " + nginxLine,
			want: Message{Format: FormatRFC3164, Facility: 23, Severity: 6, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, testZone),
				Hostname: "web1", AppName: "nginx", Content: []byte(nginxLine)},
		},
		{
			name: "nginx nohostname",
			in:   "<190>Nov 23 10:00:00 nginx: " + nginxLine,
			want: Message{Format: FormatRFC3164, Facility: 23, Severity: 6, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, testZone),
				AppName: "nginx", Content: []byte(nginxLine)},
		},
		{
			name: "nginx space-padded day, dotted hostname",
			in:   "<190>Nov  3 09:08:07 web1.example.com nginx: " + nginxLine,
			want: Message{Format: FormatRFC3164, Facility: 23, Severity: 6, Time: time.Date(2026, 11, 3, 9, 8, 7, 0, testZone),
				Hostname: "web1.example.com", AppName: "nginx", Content: []byte(nginxLine)},
		},
		{
			name: "tag with pid",
			in:   "<38>Nov 23 10:00:00 host sshd[1234]: Accepted publickey",
			want: Message{Format: FormatRFC3164, Facility: 4, Severity: 6, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, testZone),
				Hostname: "host", AppName: "sshd", ProcID: "1234", Content: []byte("Accepted publickey")},
		},
		{
			name: "tag with pid, no hostname, no colon",
			in:   "<13>Nov 23 10:00:00 app[7] hello",
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, testZone),
				AppName: "app", ProcID: "7", Content: []byte("hello")},
		},
		{
			name: "hostname, no tag",
			in:   "<13>Nov 23 10:00:00 host just some text: here",
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, testZone),
				Hostname: "host", Content: []byte("just some text: here")},
		},
		{
			name: "IPv6 hostname",
			in:   "<13>Nov 23 10:00:00 fe80::1 nginx: x",
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, testZone),
				Hostname: "fe80::1", AppName: "nginx", Content: []byte("x")},
		},
		{
			name: "tag and empty content",
			in:   "<13>Nov 23 10:00:00 host app:",
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, testZone),
				Hostname: "host", AppName: "app"},
		},
		{
			name: "timestamp only",
			in:   "<13>Nov 23 10:00:00",
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, testZone)},
		},
		{
			name: "RFC 3339 timestamp (rsyslog ForwardFormat)",
			in:   "<13>2026-11-23T10:00:00.5+02:00 web1 nginx: x",
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Time: time.Date(2026, 11, 23, 10, 0, 0, 5e8, time.FixedZone("", 7200)),
				Hostname: "web1", AppName: "nginx", Content: []byte("x")},
		},
		{
			name: "RFC 3339 timestamp only",
			in:   "<13>2026-11-23T10:00:00Z",
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)},
		},
		{
			name: "bad RFC 3339 timestamp is content",
			in:   "<13>2026-11-23T25:00:00Z web1 nginx: x",
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Content: []byte("2026-11-23T25:00:00Z web1 nginx: x")},
		},
		{
			name: "no header",
			in:   "<13>hello world: not a tag",
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Content: []byte("hello world: not a tag")},
		},
		{
			name: "bad timestamp is content",
			in:   "<13>Nov 32 10:00:00 host app: x",
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Content: []byte("Nov 32 10:00:00 host app: x")},
		},
		{
			name: "priority only",
			in:   "<0>",
			want: Message{Format: FormatRFC3164},
		},
		{
			name: "trailing CRLF and NUL trimmed",
			in:   "<190>Nov 23 10:00:00 web1 nginx: " + nginxLine + "\r\n\x00",
			want: Message{Format: FormatRFC3164, Facility: 23, Severity: 6, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, testZone),
				Hostname: "web1", AppName: "nginx", Content: []byte(nginxLine)},
		},
		{
			name: "Dec to Jan rollover",
			in:   "<13>Dec 31 23:59:58 host app: x",
			now:  time.Date(2027, 1, 1, 0, 0, 5, 0, testZone),
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Time: time.Date(2026, 12, 31, 23, 59, 58, 0, testZone),
				Hostname: "host", AppName: "app", Content: []byte("x")},
		},
		{
			name: "sender a little ahead over New Year",
			in:   "<13>Jan  1 00:00:03 host app: x",
			now:  time.Date(2026, 12, 31, 23, 59, 58, 0, testZone),
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Time: time.Date(2027, 1, 1, 0, 0, 3, 0, testZone),
				Hostname: "host", AppName: "app", Content: []byte("x")},
		},
		{
			name: "months old message is last year",
			in:   "<13>Jun 15 12:00:00 host app: x",
			now:  time.Date(2027, 1, 10, 0, 0, 0, 0, testZone),
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Time: time.Date(2026, 6, 15, 12, 0, 0, 0, testZone),
				Hostname: "host", AppName: "app", Content: []byte("x")},
		},
		{
			name: "29 Feb in a leap year",
			in:   "<13>Feb 29 12:00:00 host app: x",
			now:  time.Date(2028, 3, 1, 0, 0, 0, 0, testZone),
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Time: time.Date(2028, 2, 29, 12, 0, 0, 0, testZone),
				Hostname: "host", AppName: "app", Content: []byte("x")},
		},
		{
			name: "29 Feb with no leap year near",
			in:   "<13>Feb 29 12:00:00 host app: x",
			now:  time.Date(2026, 3, 1, 0, 0, 0, 0, testZone),
			want: Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Hostname: "host", AppName: "app", Content: []byte("x")},
		},
		{
			name: "RFC 5424 without structured data",
			in:   "<165>1 2026-11-23T10:00:00.003Z web1 nginx - - - " + nginxLine,
			want: Message{Format: FormatRFC5424, Facility: 20, Severity: 5, Time: time.Date(2026, 11, 23, 10, 0, 0, 3e6, time.UTC),
				Hostname: "web1", AppName: "nginx", Content: []byte(nginxLine)},
		},
		{
			name: "RFC 5424 example with structured data and BOM",
			in:   `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 42 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] ` + "\xef\xbb\xbfAn application event log entry...",
			want: Message{Format: FormatRFC5424, Facility: 20, Severity: 5, Time: time.Date(2003, 10, 11, 22, 14, 15, 3e6, time.UTC),
				Hostname: "mymachine.example.com", AppName: "evntslog", ProcID: "42", MsgID: "ID47",
				StructuredData: []byte(`[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]`),
				Content:        []byte("An application event log entry...")},
		},
		{
			name: "RFC 5424 escaped structured data, two elements",
			in:   `<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - [a@1 x="q\"]\\" y="]"][b@1 z="w"] msg [not sd]`,
			want: Message{Format: FormatRFC5424, Facility: 20, Severity: 5, Time: time.Date(2003, 8, 24, 5, 14, 15, 3000, time.FixedZone("", -7*3600)),
				Hostname: "192.0.2.1", AppName: "myproc", ProcID: "8710",
				StructuredData: []byte(`[a@1 x="q\"]\\" y="]"][b@1 z="w"]`), Content: []byte("msg [not sd]")},
		},
		{
			name: "RFC 5424 structured data, no message",
			in:   `<165>1 - host app - - [x@1 a="b"]`,
			want: Message{Format: FormatRFC5424, Facility: 20, Severity: 5, Hostname: "host", AppName: "app",
				StructuredData: []byte(`[x@1 a="b"]`)},
		},
		{
			name: "RFC 5424 all nil",
			in:   "<0>1 - - - - - -",
			want: Message{Format: FormatRFC5424},
		},
		{
			name: "RFC 5424 unparseable timestamp",
			in:   "<14>1 2026-13-01T00:00:00Z h a p m - x\n",
			want: Message{Format: FormatRFC5424, Facility: 1, Severity: 6, Hostname: "h", AppName: "a", ProcID: "p", MsgID: "m", Content: []byte("x")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = testNow
			}
			got, err := Parse([]byte(tt.in), now)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if diff := diffMessage(got, tt.want); diff != "" {
				t.Errorf("Parse(%q):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, reason string
	}{
		{"", ReasonEmpty},
		{"\r\n", ReasonEmpty},
		{"\x00\x00", ReasonEmpty},
		{"hello <13>", ReasonNoPriority},
		{"Nov 23 10:00:00 web1 nginx: x", ReasonNoPriority},
		{"<>x", ReasonBadPriority},
		{"<192>x", ReasonBadPriority},
		{"<1234>x", ReasonBadPriority},
		{"<13", ReasonBadPriority},
		{"<13x>", ReasonBadPriority},
		{"<-1>x", ReasonBadPriority},
		{"<13>1 2026-11-23T10:00:00Z host app", ReasonBadHeader},
		{"<13>1 - host app - -", ReasonBadHeader},
		{"<13>1 -  app - - - x", ReasonBadHeader},
		{"<13>1 - - - - - x msg", ReasonBadHeader},
		{"<13>1 - - - - -x", ReasonBadHeader},
		{`<13>1 - - - - - [a@1 b="c"`, ReasonBadHeader},
		{`<13>1 - - - - - [a@1 b="c\"]`, ReasonBadHeader},
		{`<13>1 - - - - - [a@1]x`, ReasonBadHeader},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.in), testNow)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) = %v, want a *ParseError", tt.in, err)
			continue
		}
		if pe.Reason != tt.reason {
			t.Errorf("Parse(%q): reason %q, want %q (%v)", tt.in, pe.Reason, tt.reason, err)
		}
		if !strings.HasPrefix(err.Error(), "syslog: "+tt.reason) {
			t.Errorf("Parse(%q): error %q does not start with the reason", tt.in, err)
		}
	}
}

// TestParseInterned checks that a parser with a string cache gives the same
// results as Parse and, once warm, allocates nothing.
func TestParseInterned(t *testing.T) {
	inputs := []string{
		"<190>Nov 23 10:00:00 web1 nginx: " + nginxLine,
		"<38>Nov 23 10:00:00 host sshd[1234]: Accepted publickey",
		`<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 ID1 [a@1 x="q\"]\\"] msg`,
		"<13>2026-11-23T10:00:00.5+02:00 web1 nginx: x",
	}
	p := parser{strs: make(map[string]string)}
	var m Message
	for _, in := range inputs {
		want, err := Parse([]byte(in), testNow)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if r, detail := p.parse([]byte(in), testNow, &m); r != rOK {
				t.Fatalf("parse(%q): %s %s", in, reasonNames[r], detail)
			}
			if diff := diffMessage(m, want); diff != "" {
				t.Errorf("interned parse(%q):\n%s", in, diff)
			}
		}
		b := []byte(in)
		if n := testing.AllocsPerRun(100, func() { p.parse(b, testNow, &m) }); n != 0 {
			t.Errorf("parse(%q): %v allocations, want 0", in, n)
		}
	}
}

func TestInternBounded(t *testing.T) {
	p := parser{strs: make(map[string]string)}
	for i := range 3 * maxInterned {
		p.str([]byte(strings.Repeat("x", i%300+1) + string(rune('a'+i%26))))
	}
	if len(p.strs) > maxInterned {
		t.Errorf("cache holds %d strings, want at most %d", len(p.strs), maxInterned)
	}
}

func TestReasons(t *testing.T) {
	got := strings.Join(Reasons(), ",")
	want := "empty,no-priority,bad-priority,bad-header,too-long,bad-framing"
	if got != want {
		t.Errorf("Reasons() = %s, want %s", got, want)
	}
}

// diffMessage describes how got differs from want, "" when it does not.
// Times must be the same instant with the same offset.
func diffMessage(got, want Message) string {
	var b strings.Builder
	check := func(field string, g, w any) {
		if g != w {
			fmt.Fprintf(&b, "%s: got %#v, want %#v\n", field, g, w)
		}
	}
	check("Format", got.Format, want.Format)
	check("Facility", got.Facility, want.Facility)
	check("Severity", got.Severity, want.Severity)
	_, gotOff := got.Time.Zone()
	_, wantOff := want.Time.Zone()
	if !got.Time.Equal(want.Time) || gotOff != wantOff || got.Time.IsZero() != want.Time.IsZero() {
		check("Time", got.Time.String(), want.Time.String())
	}
	check("Hostname", got.Hostname, want.Hostname)
	check("AppName", got.AppName, want.AppName)
	check("ProcID", got.ProcID, want.ProcID)
	check("MsgID", got.MsgID, want.MsgID)
	check("StructuredData", string(got.StructuredData), string(want.StructuredData))
	check("Content", string(got.Content), string(want.Content))
	check("Peer", got.Peer, want.Peer)
	return b.String()
}
