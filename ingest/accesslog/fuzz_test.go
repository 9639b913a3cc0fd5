package accesslog

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigil-soc/vigil/event"
)

// FuzzParse feeds arbitrary lines to a parser of every format. Seeds are the
// lines of the sample files in testdata/ plus the corpus in
// testdata/fuzz/FuzzParse/.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.log"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no sample files: %v", err)
	}
	for _, name := range files {
		for _, line := range readLines(f, filepath.Base(name)) {
			f.Add(line)
		}
	}
	formats := []Format{FormatUnknown, FormatNginxCombined, FormatNginxMain, FormatApacheCombined, FormatNginxJSON}
	// Long-lived parsers carry their caches from input to input; fresh ones
	// check that the caches never change a result.
	parsers := make([]*Parser, len(formats))
	for i, fm := range formats {
		parsers[i] = NewParser(fm)
	}
	reasons := Reasons()
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := string(line)
		for i, p := range parsers {
			var ev event.Event
			err := p.Parse(line, &ev)
			if string(line) != orig {
				t.Fatalf("%s: Parse modified its input", formats[i])
			}
			var fresh event.Event
			err2 := NewParser(formats[i]).Parse(line, &fresh)
			if (err == nil) != (err2 == nil) || !ev.Time.Equal(fresh.Time) || ev.Target != fresh.Target || ev.UserAgent != fresh.UserAgent ||
				ev.Action != fresh.Action || ev.Message != fresh.Message {
				t.Fatalf("%s: a used parser and a fresh one disagree: %v %+v, %v %+v", formats[i], err, ev, err2, fresh)
			}
			if err != nil {
				var le *LineError
				if !errors.As(err, &le) {
					t.Fatalf("%s: error %v (%T) is no *LineError", formats[i], err, err)
				}
				if !slices.Contains(reasons, le.Reason) {
					t.Fatalf("%s: reason %q not in Reasons()", formats[i], le.Reason)
				}
				continue
			}
			checkInvariants(t, formats[i], &ev)
		}
	})
}

func checkInvariants(t *testing.T, f Format, ev *event.Event) {
	t.Helper()
	if !ev.SourceIP.IsValid() || ev.SourceIP.Is4In6() {
		t.Fatalf("%s: bad SourceIP %v", f, ev.SourceIP)
	}
	if ev.Status < 100 || ev.Status > 999 {
		t.Fatalf("%s: Status %d out of range", f, ev.Status)
	}
	if ev.Outcome != event.OutcomeFromStatus(ev.Status) {
		t.Fatalf("%s: Outcome %q for status %d", f, ev.Outcome, ev.Status)
	}
	if !strings.HasPrefix(ev.Target, ev.Path) {
		t.Fatalf("%s: Path %q is no prefix of Target %q", f, ev.Path, ev.Target)
	}
	if ev.Target != ev.Path && ev.Target != ev.Path+"?"+ev.Query {
		t.Fatalf("%s: Target %q is not Path %q + ? + Query %q", f, ev.Target, ev.Path, ev.Query)
	}
	switch ev.Action {
	case "":
		if ev.Target == "" || !isToken(ev.Method) || ev.Message != "" {
			t.Fatalf("%s: bad request: method %q target %q message %q", f, ev.Method, ev.Target, ev.Message)
		}
	case ActionTLSHandshake, ActionNoRequest, ActionBadRequest:
		if ev.Method != "" || ev.Target != "" || ev.HTTPVersion != "" || len(ev.Message) > MaxProbeRequestBytes || !utf8.ValidString(ev.Message) {
			t.Fatalf("%s: probe %q with request fields: %+v", f, ev.Action, ev)
		}
	default:
		t.Fatalf("%s: unknown action %q", f, ev.Action)
	}
	if ev.HTTPVersion != "" && !validVersion(ev.HTTPVersion) {
		t.Fatalf("%s: bad HTTPVersion %q", f, ev.HTTPVersion)
	}
	if ev.BodyBytes < -1 {
		t.Fatalf("%s: BodyBytes %d", f, ev.BodyBytes)
	}
	if ev.Time.IsZero() || ev.Source != event.SourceAccess || ev.Dataset == "" || ev.ID != "" {
		t.Fatalf("%s: bad event %+v", f, ev)
	}
}

// TestFuzzCorpusPresent guards against the seed corpus going missing, since
// FuzzParse would still pass without it.
func TestFuzzCorpusPresent(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzParse"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("seed corpus testdata/fuzz/FuzzParse is empty: %v", err)
	}
}
