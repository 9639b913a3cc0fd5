package dashboards

import (
	"os/exec"
	"slices"
	"testing"
)

// installHint says how to get Prometheus and promtool.
const installHint = "install it with `apt-get install -y prometheus` (Debian's package ships both prometheus and promtool)"

// lookPath returns the path of the program name, failing the test with
// installHint when it is not installed.
func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH: %s", name, installHint)
	}
	return p
}

// TestAlertRules runs promtool over the alert rules, their unit tests and
// the example configuration, as CI would.
func TestAlertRules(t *testing.T) {
	promtool := lookPath(t, "promtool")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"check rules", []string{"check", "rules", "vigil-alerts.yml"}},
		{"test rules", []string{"test", "rules", "vigil-alerts.test.yml"}},
		{"check config", []string{"check", "config", "prometheus.yml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(promtool, tc.args...)
			cmd.Dir = "prometheus"
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %v: %v\n%s", tc.args, err, out)
			}
		})
	}
}

// TestAlertRulesShape checks that every rule carries a severity and the
// annotations an on-call person needs, and that the unit tests have, for
// every rule, a case where it fires and one where it does not.
func TestAlertRulesShape(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	decodeYAML(t, "prometheus/vigil-alerts.yml", &rules)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	decodeYAML(t, "prometheus/vigil-alerts.test.yml", &tests)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}

	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			if !fires[r.Alert] || !silent[r.Alert] {
				t.Errorf("%s: the unit tests need a case where it fires (%v) and one where it does not (%v)", r.Alert, fires[r.Alert], silent[r.Alert])
			}
		}
	}
	want := []string{
		"VigilDown", "VigilIngestStalled", "VigilLagHigh", "VigilConsumerBacklogGrowing", "VigilNoDetector",
		"VigilRedisWriteErrors", "VigilElasticsearchErrors", "VigilCircuitBreakerOpen", "VigilLockdownActive",
	}
	if !slices.Equal(names, want) {
		t.Errorf("rules %v, want %v", names, want)
	}
}
