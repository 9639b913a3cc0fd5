package detect

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vigil-soc/vigil/rules"
)

func TestDefaultPackLoads(t *testing.T) {
	rs, err := LoadFS(rules.FS, ".", "rules")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"http-404-scan": true, "auth-bruteforce": true, "path-traversal": true, "sql-injection": true, "script-injection": true}
	for _, r := range rs {
		delete(want, r.ID)
	}
	if len(want) > 0 {
		t.Fatalf("default pack lacks %v", want)
	}
}

func TestBadRules(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error, each must appear
	}{
		{"zero window", `rules:
  - id: scan
    threshold: 5
    window: 0s
`, []string{`bad.yaml:4: rule "scan": window: must be > 0`}},
		{"unknown key", `rules:
  - id: scan
    threshold: 5
    window: 1m
    treshold: 4
`, []string{`bad.yaml:5: rule "scan": treshold: unknown field`}},
		{"unknown match key", `rules:
  - id: scan
    threshold: 5
    window: 1m
    match:
      stauts: [404]
`, []string{`bad.yaml:6: rule "scan": match.stauts: unknown field`}},
		{"bad duration", `rules:
  - id: scan
    threshold: 5
    window: 1 minute
`, []string{`bad.yaml:4: rule "scan": window: invalid duration "1 minute"`}},
		{"several problems at once", `rules:
  - id: Scan_1
    threshold: 0
    window: 1m
    severity: urgent
    match: {status: [4040], signature: [rce]}
    group_by: user.name
    actions: {ban: 1h}
`, []string{`id: must be lower-case`, `threshold: must be >= 1`, `severity: must be one of`, `match.status: 4040 is not`, `match.signature: unknown signature "rce"`, `actions.ban: needs group_by: source.ip`}},
		{"not a list", "rules: {}\n", []string{`bad.yaml:1: rules: must be a list`}},
		{"after names a rule grouped otherwise, or none", `rules:
  - id: a
    threshold: 1
    window: 1m
  - id: b
    group_by: user.name
    threshold: 1
    window: 1m
    after: {rule: a, within: 1m}
  - id: c
    threshold: 1
    window: 1m
    after: {rule: zzz, within: 1m}
`, []string{`bad.yaml:9: rule "b": after.rule: "a" groups by source.ip, this rule by user.name`, `bad.yaml:13: rule "c": after.rule: no rule "zzz"`}},
		{"baseline and novelty checks", `rules:
  - id: a
    threshold: 1
    window: 1m
    baseline: {factor: 1, learn: 1s}
  - id: b
    threshold: 1
    window: 1m
    novelty: {field: url.nope}
    actions: {lockdown: {mode: half}}
`, []string{`baseline.factor: must be > 1`, `baseline.learn: must be at least the window`, `novelty.field: must be one of`, `actions.lockdown: mode must be full or read-only`}},
		{"yaml syntax", "rules:\n  - id: [\n", []string{`bad.yaml: line`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadFS(fstest.MapFS{"bad.yaml": {Data: []byte(tc.yaml)}}, ".", "")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestDuplicateIDsAcrossFiles(t *testing.T) {
	r := "rules:\n  - id: scan\n    threshold: 5\n    window: 1m\n"
	_, err := LoadFS(fstest.MapFS{"a.yaml": {Data: []byte(r)}, "b.yaml": {Data: []byte(r)}}, ".", "dir")
	if err == nil || !strings.Contains(err.Error(), `dir/b.yaml:2: rule "scan": id: duplicate: also defined at dir/a.yaml:2`) {
		t.Fatalf("err = %v", err)
	}
}
