package replay

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-soc/vigil/bench/loggen"
	"github.com/vigil-soc/vigil/detect"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/rules"
)

func defaultPack(t testing.TB) (*detect.RuleSet, *detect.Allowlist) {
	rs, err := detect.LoadFS(rules.FS, ".", "rules")
	if err != nil {
		t.Fatal(err)
	}
	allow, err := detect.NewAllowlist(detect.DefaultAllowlist)
	if err != nil {
		t.Fatal(err)
	}
	return detect.Compile(rs), allow
}

func replayAll(t testing.TB, data []byte, workers int) ([]string, *Result) {
	rs, allow := defaultPack(t)
	var got []string
	res, err := Run(context.Background(), Options{Rules: rs, Allow: allow, Workers: workers, OnAlert: func(a event.Alert) {
		got = append(got, fmt.Sprintf("%s %s allowlisted=%v", a.Rule, a.Key, a.Allowlisted))
	}}, []Input{{Name: "gen", R: bytes.NewReader(data)}})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	return got, res
}

// TestReplayMatchesGroundTruth replays generated logs (scanners, slow
// scanners, brute forcers, payload attackers, decoys, junk, IPv6, slightly
// out-of-order lines) in every format and compares the detections with the
// generator's independently computed truth, exactly.
func TestReplayMatchesGroundTruth(t *testing.T) {
	for _, format := range []string{loggen.FormatCombined, loggen.FormatMain, loggen.FormatJSON} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			st, err := loggen.Generate(&buf, loggen.Config{Lines: 200_000, Seed: 7, Format: format})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			modelled, actors := map[string]bool{}, map[string]bool{"global": true}
			for _, tr := range st.Truth {
				want = append(want, fmt.Sprintf("%s %s allowlisted=%v", tr.Rule, tr.Key, tr.Allowlisted))
				modelled[tr.Rule] = true
				actors[tr.Key] = true
			}
			sort.Strings(want)
			all, res := replayAll(t, buf.Bytes(), 0)
			// The generator models five rules exactly; the others (403
			// spikes, ...) may only fire for its attackers, never for a user.
			var got []string
			for _, d := range all {
				rule, rest, _ := strings.Cut(d, " ")
				key, _, _ := strings.Cut(rest, " ")
				if modelled[rule] {
					got = append(got, d)
				} else if !actors[key] {
					t.Errorf("%s fired for %s, who is no attacker", rule, key)
				}
			}
			if res.Lines != int64(st.Lines) {
				t.Errorf("read %d lines, generator wrote %d", res.Lines, st.Lines)
			}
			if skipped := res.Lines - res.Events; skipped != int64(st.Cut) {
				t.Errorf("skipped %d lines (%v), generator wrote %d lines cut short", skipped, res.Skipped, st.Cut)
			}
			if len(want) < 20 {
				t.Fatalf("truth has only %d detections", len(want))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("detections differ from the truth\n got: %d\nwant: %d", len(got), len(want))
				diff(t, got, want)
			}
		})
	}
}

func diff(t *testing.T, got, want []string) {
	g, w := map[string]bool{}, map[string]bool{}
	for _, s := range got {
		g[s] = true
	}
	for _, s := range want {
		w[s] = true
	}
	for s := range w {
		if !g[s] {
			t.Errorf("missing: %s", s)
		}
	}
	for s := range g {
		if !w[s] {
			t.Errorf("unexpected: %s", s)
		}
	}
}

// TestParallelEqualsSequential: the parallel parse gives exactly the alerts
// of one worker, in the same order.
func TestParallelEqualsSequential(t *testing.T) {
	var buf bytes.Buffer
	if _, err := loggen.Generate(&buf, loggen.Config{Lines: 100_000, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	one, _ := replayAll(t, buf.Bytes(), 1)
	four, _ := replayAll(t, buf.Bytes(), 4)
	if fmt.Sprint(one) != fmt.Sprint(four) {
		t.Fatalf("1 worker: %d alerts, 4 workers: %d alerts", len(one), len(four))
	}
}

var (
	benchOnce sync.Once
	benchLog  []byte
)

// BenchmarkReplay1M replays a generated 1,000,000-line nginx log through the
// default pack; lines/s is the figure to compare with fail2ban-regex.
func BenchmarkReplay1M(b *testing.B) {
	benchOnce.Do(func() {
		var buf bytes.Buffer
		if _, err := loggen.Generate(&buf, loggen.Config{Lines: 1_000_000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
		benchLog = buf.Bytes()
	})
	rs, allow := defaultPack(b)
	b.SetBytes(int64(len(benchLog)))
	b.ReportAllocs()
	var lines int64
	for b.Loop() {
		res, err := Run(context.Background(), Options{Rules: rs, Allow: allow, Workers: runtime.GOMAXPROCS(0)},
			[]Input{{Name: "gen", R: bytes.NewReader(benchLog)}})
		if err != nil {
			b.Fatal(err)
		}
		lines += res.Lines
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}
