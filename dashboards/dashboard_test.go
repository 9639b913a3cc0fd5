package dashboards

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// instanceFilter is the matcher every selector of the dashboard carries.
const instanceFilter = `instance=~"$instance"`

// metricRe finds the metric names in a query: Vigil's, the Go and process
// collectors' and up, each with its matchers if it has any.
var metricRe = regexp.MustCompile(`\b((?:vigil|go|process)_[a-z0-9_]+|up)\b(\{[^}]*\})?`)

// TestDashboardModel checks the dashboard's identity, variables, layout and
// that every query is filtered by instance.
func TestDashboardModel(t *testing.T) {
	raw, err := FS.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID           string `json:"uid"`
		Title         string `json:"title"`
		SchemaVersion int    `json:"schemaVersion"`
		ID            *int   `json:"id"`
		Templating    struct {
			List []struct {
				Name, Type string
				Query      any
				Datasource any
				Multi      bool
				IncludeAll bool `json:"includeAll"`
			}
		}
		Panels []struct {
			ID         int            `json:"id"`
			Type       string         `json:"type"`
			Title      string         `json:"title"`
			Datasource map[string]any `json:"datasource"`
			GridPos    struct{ H, W, X, Y int }
			Targets    []struct {
				Expr       string         `json:"expr"`
				Datasource map[string]any `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID != "vigil-overview" || d.Title != "Vigil — pipeline and response" || d.ID != nil {
		t.Errorf("uid %q, title %q, id %v: want vigil-overview, \"Vigil — pipeline and response\", null", d.UID, d.Title, d.ID)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a recent one (≥ 36)", d.SchemaVersion)
	}

	vars := map[string]int{}
	for i, v := range d.Templating.List {
		vars[v.Name] = i
	}
	if i, ok := vars["datasource"]; !ok || d.Templating.List[i].Type != "datasource" || d.Templating.List[i].Query != "prometheus" {
		t.Errorf("want a $datasource variable of type datasource for prometheus: %+v", d.Templating.List)
	}
	if i, ok := vars["instance"]; !ok {
		t.Errorf("no $instance variable")
	} else {
		v := d.Templating.List[i]
		q, _ := json.Marshal(v.Query)
		if v.Type != "query" || !strings.Contains(string(q), "label_values(vigil_detect_events_total, instance)") || !v.Multi || !v.IncludeAll {
			t.Errorf("$instance: want a multi-value query variable over label_values(vigil_detect_events_total, instance): %+v", v)
		}
	}

	ids := map[int]bool{}
	var cells [][24]bool // occupied grid cells, by row
	nQueries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for y := g.Y; y < g.Y+g.H; y++ {
			for len(cells) <= y {
				cells = append(cells, [24]bool{})
			}
			for x := g.X; x < min(g.X+g.W, 24); x++ {
				if cells[y][x] {
					t.Errorf("panel %q overlaps another at (%d, %d)", p.Title, x, y)
				}
				cells[y][x] = true
			}
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want uid ${datasource}", p.Title, p.Datasource)
		}
		for _, tg := range p.Targets {
			nQueries++
			if tg.Datasource["uid"] != "${datasource}" {
				t.Errorf("panel %q: query datasource %v, want uid ${datasource}", p.Title, tg.Datasource)
			}
			names := metricRe.FindAllStringSubmatch(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: no metric found in %q", p.Title, tg.Expr)
			}
			for _, m := range names {
				if !strings.Contains(m[2], instanceFilter) {
					t.Errorf("panel %q: %s is not filtered by %s in %q", p.Title, m[1], instanceFilter, tg.Expr)
				}
			}
		}
	}
	t.Logf("%d panels, %d queries", len(d.Panels), nQueries)

	// The panels the dashboard must have, by the metric they show.
	used := dashboardMetrics(t, raw)
	for _, want := range []string{
		"vigil_ingest_events_total", "vigil_ingest_lines_skipped_total", "vigil_detect_lag_seconds_bucket",
		"vigil_detect_detections_total", "vigil_detect_alerts_published_total", "vigil_respond_actions_total",
		"vigil_respond_bans_active", "vigil_respond_lockdown_active", "vigil_bus_consumer_pending_messages",
		"vigil_bus_consumer_ack_pending_messages", "vigil_index_errors_total", "vigil_respond_breaker_open",
		"up", "process_resident_memory_bytes", "go_goroutines", "process_cpu_seconds_total",
		"vigil_http_requests_total", "vigil_http_rate_limited_total",
	} {
		if !slices.Contains(used, want) {
			t.Errorf("no panel shows %s", want)
		}
	}
}

// dashboardMetrics returns the metric names the dashboard's queries use,
// sorted, each once.
func dashboardMetrics(t *testing.T, dash []byte) []string {
	t.Helper()
	var names []string
	for _, pq := range targetExprs(t, dash) {
		for _, m := range metricRe.FindAllStringSubmatch(pq.expr, -1) {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// TestGrafanaProvisioning checks the provisioning examples: a file
// provider of apiVersion 1 and a Prometheus data source.
func TestGrafanaProvisioning(t *testing.T) {
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string
			Type    string
			Options struct{ Path string }
		}
	}
	decodeYAML(t, "grafana/provisioning/dashboards/vigil.yaml", &prov)
	if prov.APIVersion != 1 || len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path == "" {
		t.Errorf("dashboard provider: want apiVersion 1 and one provider of type file with options.path: %+v", prov)
	}

	var dsProv struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, URL string
			Access          string
		}
	}
	decodeYAML(t, "grafana/provisioning/datasources/prometheus.yaml", &dsProv)
	if dsProv.APIVersion != 1 || len(dsProv.Datasources) != 1 || dsProv.Datasources[0].Type != "prometheus" || dsProv.Datasources[0].URL == "" {
		t.Errorf("data source: want apiVersion 1 and one prometheus data source with a url: %+v", dsProv)
	}
}

// decodeYAML decodes the embedded file name into v.
func decodeYAML(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := FS.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}
