package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest/accesslog"
)

// scan is n 404 lines from ip, one a second from start, paths from first.
func scan(ip string, start time.Time, first, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s - - [%s] \"GET /probe/%d HTTP/1.1\" 404 153 \"-\" \"x\"\n",
			ip, start.Add(time.Duration(i)*time.Second/2).Format("02/Jan/2006:15:04:05 -0700"), first+i)
	}
	return b.String()
}

// TestOldestFirst: rotated logs given newest first (as a shell expands
// access.log*) are read oldest first, so a scan split by the rotation is
// still caught; an input without a parsable line goes first.
func TestOldestFirst(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	inputs := []Input{
		{Name: "access.log", R: strings.NewReader(scan("203.0.113.7", t0.Add(15*time.Second), 30, 20))},
		{Name: "access.log.1", R: strings.NewReader(scan("203.0.113.7", t0, 0, 30))},
		{Name: "junk.log", R: strings.NewReader("\x16\x03\x01 not a log line\n")},
		{Name: "no-newline.log", R: strings.NewReader(strings.TrimSuffix(scan("198.51.100.9", t0.Add(-time.Hour), 0, 1), "\n"))},
	}
	ordered, err := OldestFirst(inputs, accesslog.FormatUnknown)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range ordered {
		names = append(names, in.Name)
	}
	if got, want := strings.Join(names, " "), "junk.log no-newline.log access.log.1 access.log"; got != want {
		t.Fatalf("order = %s, want %s", got, want)
	}
	rs, allow := defaultPack(t)
	var alerts []string
	res, err := Run(context.Background(), Options{Rules: rs, Allow: allow, OnAlert: func(a event.Alert) {
		alerts = append(alerts, a.Rule+" "+a.Key)
	}}, ordered)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines != 52 {
		t.Errorf("read %d lines, want 52 (peeked lines must still be read)", res.Lines)
	}
	if len(alerts) != 1 || alerts[0] != "http-404-scan 203.0.113.7" {
		t.Errorf("alerts = %v, want the scan split by the rotation", alerts)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("input/output error") }

// TestOldestFirstReadError: a read error is reported with the input's name,
// not taken for the end of the file.
func TestOldestFirstReadError(t *testing.T) {
	_, err := OldestFirst([]Input{{Name: "bad.log", R: failingReader{}}}, accesslog.FormatUnknown)
	if err == nil || !strings.Contains(err.Error(), "bad.log") || !strings.Contains(err.Error(), "input/output error") {
		t.Errorf("err = %v", err)
	}
}
