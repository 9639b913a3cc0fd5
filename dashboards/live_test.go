package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/bench/loggen"
	"github.com/vigil-soc/vigil/internal/redistest"
)

// elasticsearchMetrics are exported only by a Vigil that indexes into
// Elasticsearch, which the live test does not run: a query of these alone
// may come back empty while Prometheus has never seen them.
var elasticsearchMetrics = []string{"vigil_index_documents_total", "vigil_index_errors_total", "vigil_index_bulk_seconds_bucket"}

// wantFiring are the alerts the live test provokes (a lockdown through the
// admin API, the overall circuit breaker set to open after one ban); no
// other alert may fire.
var wantFiring = []string{"VigilCircuitBreakerOpen", "VigilLockdownActive"}

// TestDashboardAgainstRealPrometheus builds and starts a real `vigil run`
// with a real redis-server, feeds it a live access log from the log
// generator, has a real Prometheus scrape it every second with the alert
// rules loaded, and then evaluates every query of the Grafana dashboard
// through Prometheus's HTTP API: each must be valid, return data, and be
// filtered by $instance. It also checks the rules evaluate cleanly, that
// exactly the provoked alerts fire, and lints /metrics with promtool.
func TestDashboardAgainstRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts vigil, redis-server and prometheus")
	}
	promBin, promtool := lookPath(t, "prometheus"), lookPath(t, "promtool")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go not found in PATH: the test builds ./cmd/vigil")
	}
	dash, err := FS.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	rulesPath, err := filepath.Abs(filepath.FromSlash("prometheus/vigil-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()

	rd := redistest.Start(t)
	dir := t.TempDir()
	vigilBin := filepath.Join(dir, "vigil")
	if out, err := exec.Command(goBin, "build", "-o", vigilBin, "github.com/vigil-soc/vigil/cmd/vigil").CombinedOutput(); err != nil {
		t.Fatalf("building vigil: %v\n%s", err, out)
	}
	t.Logf("vigil built in %s", time.Since(began).Round(time.Millisecond))

	logDir := filepath.Join(dir, "logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	followLog(t, filepath.Join(logDir, "access.log"))

	const token = "dashboard-test-admin-token"
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	adminAddr, publicAddr := freeAddr(t), freeAddr(t)
	vigil := startProc(t, "vigil", vigilBin, "run",
		// Every key under the test's prefix, the Django lockdown mirror
		// too, in case the Redis is shared (VIGIL_TEST_REDIS_URL).
		"--redis", rd.URL, "--redis-prefix", rd.Prefix,
		"--django-cache-key", rd.Prefix+"1:EMERGENCY_LOCKDOWN",
		"--data-dir", filepath.Join(dir, "data"),
		"--access-log", filepath.Join(logDir, "*.log"),
		"--admin", adminAddr, "--admin-token-file", tokenFile,
		"--listen", publicAddr,
		// Make rare things happen now: a client is rate limited after
		// its burst of 3, and the overall circuit breaker opens after
		// the first automatic ban.
		"--rate-limit", "1", "--breaker-overall", "1",
	)
	waitOK(t, vigil, "http://"+adminAddr+"/readyz", 60*time.Second)

	promAddr := freeAddr(t)
	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: [%q]
`, rulesPath, adminAddr), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := startProc(t, "prometheus", promBin,
		"--config.file="+promCfg,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr,
		"--log.level=warn",
	)
	waitOK(t, prom, "http://"+promAddr+"/-/ready", 30*time.Second)
	api := &promAPI{base: "http://" + promAddr}

	// Things the access log alone does not cause: requests to the public
	// listener, some of them rate limited, and a lockdown.
	codes := postCSPReports(t, publicAddr, 20) // rate 1/s, burst 10
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusTooManyRequests] == 20 {
		t.Fatalf("CSP reports answered %v: want some accepted and some rate limited (429)", codes)
	}
	adminRequest(t, adminAddr, token, "POST", "/api/v1/lockdown", `{"mode":"read-only","duration":"30m","reason":"dashboard test"}`, http.StatusCreated)

	// Wait until Prometheus holds 15 s of scrapes and the provoked alerts
	// fire (the breaker needs a second ban, so the generator's attackers
	// must have been detected).
	waitFor(t, vigil, 60*time.Second, func() (bool, string) {
		scrapes, err := api.scalar(`count_over_time(up{job="vigil"}[1m])`)
		if err != nil {
			return false, err.Error()
		}
		firing, err := api.firing()
		if err != nil {
			return false, err.Error()
		}
		have := true
		for _, a := range wantFiring {
			have = have && slices.Contains(firing, a)
		}
		return scrapes >= 15 && have, fmt.Sprintf("%v scrapes, firing %v", scrapes, firing)
	})
	t.Logf("data and alerts ready %s after the start", time.Since(began).Round(time.Millisecond))

	t.Run("rules", func(t *testing.T) {
		rules, err := api.rules()
		if err != nil {
			t.Fatal(err)
		}
		var loaded []string
		for _, r := range rules {
			loaded = append(loaded, r.Name)
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q: %s", r.Name, r.Health, r.LastError)
			}
		}
		if want := alertNames(t); !slices.Equal(loaded, want) {
			t.Errorf("Prometheus loaded the rules %v, want %v", loaded, want)
		}
		firing, err := api.firing()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(firing, wantFiring) {
			t.Errorf("firing alerts %v, want %v", firing, wantFiring)
		}
	})

	instance := promRegex(adminAddr)
	names, err := api.metricNames()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("metric names", func(t *testing.T) {
		for _, m := range dashboardMetrics(t, dash) {
			switch {
			case slices.Contains(names, m):
			case slices.Contains(elasticsearchMetrics, m):
				t.Logf("%s: not exported (no Elasticsearch in this test)", m)
			default:
				t.Errorf("the dashboard uses %s, which vigil does not export", m)
			}
		}
	})

	t.Run("panel queries", func(t *testing.T) {
		for _, pq := range targetExprs(t, dash) {
			expr := substitute(pq.expr, instance)
			res, err := api.query(expr)
			if err != nil {
				t.Errorf("%s / %s: %v\n\t%s", pq.panel, pq.refID, err, expr)
				continue
			}
			if len(res) == 0 {
				if esOnly(pq.expr, names) {
					t.Logf("%s / %s: no data: vigil exports no Elasticsearch metrics without Elasticsearch", pq.panel, pq.refID)
					continue
				}
				t.Errorf("%s / %s: no data\n\t%s", pq.panel, pq.refID, expr)
				continue
			}
			t.Logf("%s / %s: %d series, e.g. %v = %s", pq.panel, pq.refID, len(res), res[0].Metric, res[0].Value[1])
		}
	})

	t.Run("panel queries filter by instance", func(t *testing.T) {
		// Another instance's selection must show nothing of this one: at
		// most the 0 of an `or vector(0)` fallback.
		for _, pq := range targetExprs(t, dash) {
			expr := substitute(pq.expr, promRegex("127.0.0.1:1"))
			res, err := api.query(expr)
			if err != nil {
				t.Errorf("%s / %s: %v", pq.panel, pq.refID, err)
				continue
			}
			for _, s := range res {
				if len(s.Metric) != 0 || s.Value[1] != "0" {
					t.Errorf("%s / %s: shows %v = %v for another instance: not filtered by $instance", pq.panel, pq.refID, s.Metric, s.Value[1])
				}
			}
		}
	})

	t.Run("promtool check metrics", func(t *testing.T) {
		resp, err := client.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		text, err := readAll(resp)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(text)
		out, err := cmd.CombinedOutput()
		switch {
		case err != nil:
			t.Errorf("promtool check metrics finds problems in vigil's /metrics (%v):\n%s", err, out)
		case len(bytes.TrimSpace(out)) > 0:
			t.Logf("promtool check metrics:\n%s", out)
		}
	})
}

// alertNames returns the names of the alerts in vigil-alerts.yml, in file
// order.
func alertNames(t *testing.T) []string {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	decodeYAML(t, "prometheus/vigil-alerts.yml", &f)
	var names []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
		}
	}
	return names
}

// followLog appends a live access log to path, timestamped now, until the
// test ends.
func followLog(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var genErr error // written before done closes
	go func() {
		defer close(done)
		// 1,500 lines/s for up to 2 minutes; the test stops it sooner.
		// More attackers than the default for so few lines, so that
		// several are detected within seconds.
		_, genErr = loggen.Follow(ctx, f, loggen.Config{
			Lines: 180_000, Rate: 1500, Seed: 1, Junk: 0.01,
			Scanners: 20, BruteForcers: 10, Attackers: 20,
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := f.Close(); err != nil {
			t.Error(err)
		}
		if genErr != nil {
			t.Errorf("log generator: %v", genErr)
		}
	})
}

// postCSPReports posts n legacy CSP reports to the public listener and
// returns how many got each status code.
func postCSPReports(t *testing.T, addr string, n int) map[int]int {
	t.Helper()
	const report = `{"csp-report":{"document-uri":"https://shop.example/checkout","referrer":"","violated-directive":"script-src-elem","effective-directive":"script-src-elem","original-policy":"script-src 'self'; report-uri /csp-report","disposition":"enforce","blocked-uri":"https://evil.example/x.js","status-code":200,"script-sample":""}}`
	codes := map[int]int{}
	for range n {
		resp, err := client.Post("http://"+addr+"/csp-report", "application/csp-report", strings.NewReader(report))
		if err != nil {
			t.Fatalf("posting a CSP report: %v", err)
		}
		_, _ = readAll(resp)
		codes[resp.StatusCode]++
	}
	return codes
}

// adminRequest calls the admin API and fails the test unless it answers
// want.
func adminRequest(t *testing.T, addr, token, method, path, body string, want int) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := readAll(resp)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s %s, want %d", method, path, resp.Status, b, want)
	}
}

// waitFor polls cond every half second until it holds, failing the test
// with cond's last explanation when timeout passes or p exits.
func waitFor(t *testing.T, p *proc, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if p.exited() {
			t.Fatalf("%s exited: %s", p.name, why)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after %s: %s", timeout, why)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// substitute replaces Grafana's variables in a panel query the way Grafana
// would, with instanceRegex for $instance and windows that suit the
// test's 1 s scrapes.
func substitute(expr, instanceRegex string) string {
	return strings.NewReplacer(
		"$__rate_interval", "1m",
		"$__interval", "15s",
		"$__range", "5m",
		"$instance", instanceRegex,
	).Replace(expr)
}

// promRegex returns addr as Grafana writes a regex variable into a PromQL
// string: regex metacharacters escaped, then backslashes escaped for the
// string literal.
func promRegex(addr string) string {
	return strings.ReplaceAll(regexp.QuoteMeta(addr), `\`, `\\`)
}

// esOnly reports whether every metric expr uses is an Elasticsearch metric
// that Prometheus has never seen (names).
func esOnly(expr string, names []string) bool {
	ms := metricRe.FindAllStringSubmatch(expr, -1)
	for _, m := range ms {
		if !slices.Contains(elasticsearchMetrics, m[1]) || slices.Contains(names, m[1]) {
			return false
		}
	}
	return len(ms) > 0
}

// promAPI is a client of Prometheus's HTTP API.
type promAPI struct {
	base string
}

// sample is one series of an instant vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix time, "value"]
}

// rule is one rule as /api/v1/rules reports it.
type rule struct {
	Name      string `json:"name"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
}

// get calls path with the query parameters and decodes data into v; an
// API error comes back with Prometheus's message.
func (a *promAPI) get(path string, params url.Values, v any) error {
	resp, err := client.Get(a.base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	body, err := readAll(resp)
	if err != nil {
		return err
	}
	var r struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: %s: decoding %q: %w", path, resp.Status, body, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, r.ErrorType, r.Error)
	}
	return json.Unmarshal(r.Data, v)
}

// query evaluates expr now and returns its instant vector.
func (a *promAPI) query(expr string) ([]sample, error) {
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := a.get("/api/v1/query", url.Values{"query": {expr}}, &d); err != nil {
		return nil, err
	}
	if d.ResultType != "vector" {
		return nil, fmt.Errorf("result of type %s, want vector", d.ResultType)
	}
	var s []sample
	return s, json.Unmarshal(d.Result, &s)
}

// scalar evaluates expr and returns the value of its only series, or 0
// when it has none.
func (a *promAPI) scalar(expr string) (float64, error) {
	res, err := a.query(expr)
	if err != nil || len(res) == 0 {
		return 0, err
	}
	var f float64
	_, err = fmt.Sscan(res[0].Value[1].(string), &f)
	return f, err
}

// firing returns the names of the firing alerts, sorted, each once.
func (a *promAPI) firing() ([]string, error) {
	var d struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := a.get("/api/v1/alerts", nil, &d); err != nil {
		return nil, err
	}
	var names []string
	for _, al := range d.Alerts {
		if al.State == "firing" {
			names = append(names, al.Labels["alertname"])
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// rules returns every alerting and recording rule Prometheus loaded.
func (a *promAPI) rules() ([]rule, error) {
	var d struct {
		Groups []struct {
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	if err := a.get("/api/v1/rules", nil, &d); err != nil {
		return nil, err
	}
	var out []rule
	for _, g := range d.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// metricNames returns the names of every metric Prometheus has stored.
func (a *promAPI) metricNames() ([]string, error) {
	var names []string
	return names, a.get("/api/v1/label/__name__/values", nil, &names)
}

// readAll reads and closes resp's body.
func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(resp.Body)
	return b.Bytes(), err
}
