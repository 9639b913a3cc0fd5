package replay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-soc/vigil/detect"
	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/ingest/appevent"
)

// FixtureFile is a rules fixture file, <name>.test.yaml beside <name>.yaml:
//
//	tests:
//	  - name: what the case shows
//	    log: testdata/scan.log        # a log file relative to the rules directory, or
//	    lines: |                      # the lines inline, or
//	      203.0.113.7 - - [...] "GET /x HTTP/1.1" 404 ...
//	    app_events: '[{"kind": "auth.login_failed", ...}]'   # as posted to /events, or
//	    events: |                     # ECS documents, one per line, as on the bus
//	      {"@timestamp": "...", "vigil": {"source": "csp", "csp": {...}}, ...}
//	    expect:                       # exactly these detections, no others
//	      - {rule: http-404-scan, key: 203.0.113.7, count: 50, allowlisted: false}
//
// count and allowlisted are checked only when given.
type FixtureFile struct {
	Tests []Fixture `yaml:"tests"`
}

// Fixture is one test case of a FixtureFile.
type Fixture struct {
	Name  string `yaml:"name"`
	Log   string `yaml:"log"`
	Lines string `yaml:"lines"`
	// AppEvents is a JSON array of application events as posted to /events.
	AppEvents string `yaml:"app_events"`
	// Events are ECS event documents, one per line, as on the bus (any
	// source: CSP reports, application events, access log lines).
	Events string   `yaml:"events"`
	Expect []Expect `yaml:"expect"`
}

// Expect is one expected detection.
type Expect struct {
	Rule        string `yaml:"rule"`
	Key         string `yaml:"key"`
	Count       int    `yaml:"count"`
	Allowlisted *bool  `yaml:"allowlisted"`
}

// FixtureResult is the outcome of one fixture.
type FixtureResult struct {
	File, Name string
	Failures   []string // empty when it passed
}

// RunFixtures runs every *.test.yaml fixture in dir of fsys through the whole
// rule set rules (replay semantics, the given allow-list).
func RunFixtures(ctx context.Context, fsys fs.FS, dir, display string, rules *detect.RuleSet, allow *detect.Allowlist) ([]FixtureResult, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading rules directory: %w", err)
	}
	var results []FixtureResult
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".test.yaml") && !strings.HasSuffix(name, ".test.yml") {
			continue
		}
		file := path.Join(display, name)
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		var ff FixtureFile
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&ff); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		for i, fx := range ff.Tests {
			if fx.Name == "" {
				fx.Name = fmt.Sprintf("test %d", i+1)
			}
			res := FixtureResult{File: file, Name: fx.Name}
			var got []event.Alert
			onAlert := func(a event.Alert) { got = append(got, a) }
			given := 0
			for _, s := range []string{fx.Log, fx.Lines, fx.AppEvents, fx.Events} {
				if s != "" {
					given++
				}
			}
			if given != 1 {
				return nil, fmt.Errorf("%s: test %q: give exactly one of log, lines, app_events, events", file, fx.Name)
			}
			if fx.AppEvents != "" || fx.Events != "" {
				evs, err := fixtureEvents(fx)
				if err != nil {
					return nil, fmt.Errorf("%s: test %q: %w", file, fx.Name, err)
				}
				Events(rules, allow, evs, onAlert)
				res.Failures = compare(fx.Expect, got)
				results = append(results, res)
				continue
			}
			var in io.Reader
			switch {
			case fx.Log != "":
				data, err := fs.ReadFile(fsys, path.Join(dir, fx.Log))
				if err != nil {
					return nil, fmt.Errorf("%s: test %q: log: %w", file, fx.Name, err)
				}
				in = bytes.NewReader(data)
			default:
				in = strings.NewReader(fx.Lines)
			}
			if _, err := Run(ctx, Options{Rules: rules, Allow: allow, OnAlert: onAlert},
				[]Input{{Name: fx.Name, R: in}}); err != nil {
				return nil, fmt.Errorf("%s: test %q: %w", file, fx.Name, err)
			}
			res.Failures = compare(fx.Expect, got)
			results = append(results, res)
		}
	}
	return results, nil
}

// fixtureEvents decodes a fixture's app_events or events.
func fixtureEvents(fx Fixture) ([]event.Event, error) {
	if fx.AppEvents != "" {
		evs, _, err := appevent.Parse([]byte(fx.AppEvents), time.Unix(0, 0), "")
		if err != nil {
			return nil, fmt.Errorf("app_events: %w", err)
		}
		return evs, nil
	}
	var evs []event.Event
	for i, line := range strings.Split(strings.TrimSpace(fx.Events), "\n") {
		var ev event.Event
		if err := ev.UnmarshalJSON([]byte(line)); err != nil {
			return nil, fmt.Errorf("events line %d: %w", i+1, err)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// Events runs events, in order, through a fresh engine (replay semantics)
// and calls onAlert for each detection.
func Events(rules *detect.RuleSet, allow *detect.Allowlist, evs []event.Event, onAlert func(event.Alert)) {
	engine := detect.NewEngine(rules, detect.Options{Allow: allow, BanQuiet: detect.DefaultBanQuiet})
	m := rules.NewMatcher()
	var obs []detect.Observation
	var alerts []event.Alert
	for i := range evs {
		obs = m.Match(&evs[i], detect.Sample(&evs[i]), obs[:0])
		for j := range obs {
			alerts = engine.Observe(&obs[j], alerts[:0])
			for _, a := range alerts {
				onAlert(a)
			}
		}
	}
}

// compare lists every difference between the expected and the actual
// detections.
func compare(want []Expect, got []event.Alert) []string {
	var fails []string
	used := make([]bool, len(got))
	for _, w := range want {
		i := slices.IndexFunc(got, func(a event.Alert) bool { return a.Rule == w.Rule && a.Key == w.Key })
		if i < 0 {
			fails = append(fails, fmt.Sprintf("missing: %s for %s", w.Rule, w.Key))
			continue
		}
		used[i] = true
		a := got[i]
		if w.Count != 0 && a.Count != w.Count {
			fails = append(fails, fmt.Sprintf("%s for %s: count %d, want %d", w.Rule, w.Key, a.Count, w.Count))
		}
		if w.Allowlisted != nil && a.Allowlisted != *w.Allowlisted {
			fails = append(fails, fmt.Sprintf("%s for %s: allowlisted %v, want %v", w.Rule, w.Key, a.Allowlisted, *w.Allowlisted))
		}
	}
	for i, a := range got {
		if !used[i] {
			fails = append(fails, fmt.Sprintf("unexpected: %s for %s (count %d at %s)", a.Rule, a.Key, a.Count, a.At.Format("2006-01-02T15:04:05Z07:00")))
		}
	}
	sort.Strings(fails)
	return fails
}
