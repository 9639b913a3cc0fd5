package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/bench/loggen"
	"github.com/vigil-soc/vigil/bus"
	"github.com/vigil-soc/vigil/detect"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/internal/redistest"
	"github.com/vigil-soc/vigil/replay"
)

// TestStreamingEqualsReplay: the live path (tail, batches on JetStream
// across partitions, the detector) and `vigil replay` give the same
// detections, with the same ids, for the same generated log of scanners,
// brute forcers, payload attackers, decoys, junk and IPv6 clients.
//
// A keyed rule sees its key's events in the same order both ways (one key,
// one partition). A global rule (no key) sees the partitions interleaved
// as they arrive: it fires as often and at the same count, but the event
// that tips it over, and so its time and id, may differ by up to the
// allowed lateness.
func TestStreamingEqualsReplay(t *testing.T) {
	h := newHarness(t, redistest.Start(t), t.TempDir())
	h.cfg.Partitions = 4
	h.start()

	// Written after the start, so that live mode's start-up cut-off drops
	// nothing and the log's event time runs with the clock.
	var buf bytes.Buffer
	if _, err := loggen.Generate(&buf, loggen.Config{Lines: 60_000, Seed: 7, Rate: 2000, Start: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.logDir, "access.log"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	rules, err := LoadRules(h.cfg.Rules)
	if err != nil {
		t.Fatal(err)
	}
	allow, err := detect.NewAllowlist(h.cfg.Allowlist)
	if err != nil {
		t.Fatal(err)
	}
	var want []event.Alert
	res, err := replay.Run(context.Background(), replay.Options{Rules: detect.Compile(rules), Allow: allow, OnAlert: func(a event.Alert) {
		want = append(want, a)
	}}, []replay.Input{{Name: "access.log", R: bytes.NewReader(buf.Bytes())}})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 20 {
		t.Fatalf("replay found only %d detections: the log is too tame to compare", len(want))
	}

	waitFor(t, 60*time.Second, fmt.Sprintf("%d events through the detector", res.Events), func() bool {
		return h.app.detectedEvents() >= res.Events
	})
	var got []event.Alert
	waitFor(t, 10*time.Second, fmt.Sprintf("%d alerts", len(want)), func() bool {
		got = got[:0]
		for _, m := range streamMessages(t, h.app, bus.StreamAlerts) {
			var a event.Alert
			if err := json.Unmarshal(m.Data(), &a); err != nil {
				t.Fatal(err)
			}
			got = append(got, a)
		}
		return len(got) >= len(want)
	})
	t.Logf("%d detections, %d events", len(want), res.Events)
	if n := h.app.detectedEvents(); n != res.Events {
		t.Errorf("the detector saw %d events, replay %d", n, res.Events)
	}
	gotKeyed, gotGlobal := split(got)
	wantKeyed, wantGlobal := split(want)
	if !slices.Equal(gotKeyed, wantKeyed) {
		t.Errorf("streaming and replay differ:\nonly streaming: %v\nonly replay: %v", minus(gotKeyed, wantKeyed), minus(wantKeyed, gotKeyed))
	}
	if len(gotGlobal) != len(wantGlobal) {
		t.Fatalf("global detections: streaming %v, replay %v", gotGlobal, wantGlobal)
	}
	for i, g := range gotGlobal {
		w := wantGlobal[i]
		if g.Rule != w.Rule || g.Count != w.Count || g.At.Sub(w.At).Abs() > h.cfg.Lateness {
			t.Errorf("global detection %d: streaming %s count=%d at %s, replay %s count=%d at %s", i, g.Rule, g.Count, g.At, w.Rule, w.Count, w.At)
		}
	}
}

// split returns the keyed alerts as sorted comparable lines, and the global
// ones (no key field) sorted by rule and time.
func split(alerts []event.Alert) (keyed []string, global []event.Alert) {
	for _, a := range alerts {
		if a.KeyField == "" {
			global = append(global, a)
			continue
		}
		keyed = append(keyed, fmt.Sprintf("%s %s %s at=%s count=%d allowlisted=%v", a.ID, a.Rule, a.Key, a.At.UTC().Format(time.RFC3339Nano), a.Count, a.Allowlisted))
	}
	slices.Sort(keyed)
	slices.SortFunc(global, func(a, b event.Alert) int {
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		return a.At.Compare(b.At)
	})
	return keyed, global
}

// minus returns the elements of a not in b.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}
