package dashboards

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update rewrites grafana/vigil.json from vigilDashboard instead of
// comparing them.
var update = flag.Bool("update", false, "rewrite grafana/vigil.json from the dashboard defined in grafana_gen_test.go")

// dashboardPath is the generated dashboard, relative to this package.
const dashboardPath = "grafana/vigil.json"

// TestGrafanaDashboardGolden checks that grafana/vigil.json is what
// vigilDashboard generates; -update rewrites the file.
func TestGrafanaDashboardGolden(t *testing.T) {
	got, err := renderDashboard()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(filepath.FromSlash(dashboardPath), got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(filepath.FromSlash(dashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what grafana_gen_test.go generates: edit the generator, not the file, and run\n\tgo test ./dashboards -run TestGrafanaDashboardGolden -update", dashboardPath)
	}
}

// renderDashboard returns the dashboard JSON as written to vigil.json.
func renderDashboard() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "=~", "<" and "&" readable in queries
	enc.SetIndent("", "  ")
	if err := enc.Encode(vigilDashboard()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ds is the data source every panel and query uses: the dashboard's
// $datasource variable.
var ds = map[string]any{"type": "prometheus", "uid": "${datasource}"}

// sel returns a selector of metric filtered by the $instance variable and
// the extra matchers, e.g. sel("up", "") = `up{instance=~"$instance"}`.
func sel(metric, extra string) string {
	m := `instance=~"$instance"`
	if extra != "" {
		m += ", " + extra
	}
	return metric + "{" + m + "}"
}

// rate returns `rate(<sel(metric, extra)>[$__rate_interval])`.
func rate(metric, extra string) string {
	return "rate(" + sel(metric, extra) + "[$__rate_interval])"
}

// quantile returns the q quantile of the histogram metric (without its
// _bucket suffix) over $__rate_interval, across the selected instances.
func quantile(q, metric string) string {
	return "histogram_quantile(" + q + ", sum by (le) (" + rate(metric+"_bucket", "") + "))"
}

// query is one target of a panel.
type query struct {
	expr   string
	legend string
}

// q returns a query.
func q(expr, legend string) query { return query{expr: expr, legend: legend} }

// panel is one panel before layout.
type panel struct {
	kind        string // timeseries, stat, state-timeline
	title       string
	description string
	unit        string
	width       int // grid units of 24
	height      int
	queries     []query
	mappings    []any          // value mappings (stat, state-timeline)
	thresholds  []any          // threshold steps; default green
	options     map[string]any // merged over the kind's default options
	custom      map[string]any // merged over fieldConfig.defaults.custom
	overrides   []any
	min         *float64
}

// row is a titled group of panels.
type row struct {
	title  string
	panels []panel
}

var zero = 0.0

// timeseries returns a time series panel, 8 high, starting at 0.
func timeseries(width int, title, unit, description string, queries ...query) panel {
	return panel{kind: "timeseries", title: title, description: description, unit: unit, width: width, height: 8, queries: queries, min: &zero}
}

// stat returns a stat panel, 4 high, showing the last value.
func stat(title, unit, description string, queries ...query) panel {
	return panel{kind: "stat", title: title, description: description, unit: unit, width: 3, height: 4, queries: queries}
}

// timeline returns a state timeline panel of the given value mappings.
func timeline(width int, title, description string, mappings []any, queries ...query) panel {
	return panel{kind: "state-timeline", title: title, description: description, unit: "none", width: width, height: 8, queries: queries, mappings: mappings}
}

// valueMap returns a value mapping of exact values to texts and colours,
// given as value, text, colour triples.
func valueMap(triples ...string) []any {
	opts := map[string]any{}
	for i := 0; i+2 < len(triples); i += 3 {
		opts[triples[i]] = map[string]any{"text": triples[i+1], "color": triples[i+2], "index": i / 3}
	}
	return []any{map[string]any{"type": "value", "options": opts}}
}

// steps returns threshold steps: a base colour, then value, colour pairs.
func steps(base string, pairs ...any) []any {
	s := []any{map[string]any{"color": base, "value": nil}}
	for i := 0; i+1 < len(pairs); i += 2 {
		s = append(s, map[string]any{"color": pairs[i+1], "value": pairs[i]})
	}
	return s
}

// rightAxis is an override moving the query refID to a right-hand axis in
// unit.
func rightAxis(refID, unit string) map[string]any {
	return map[string]any{
		"matcher": map[string]any{"id": "byFrameRefID", "options": refID},
		"properties": []any{
			map[string]any{"id": "custom.axisPlacement", "value": "right"},
			map[string]any{"id": "unit", "value": unit},
		},
	}
}

// tableLegend shows the legend as a table of max and last values, largest
// first: for panels with many mostly-zero series.
var tableLegend = map[string]any{
	"legend": map[string]any{"displayMode": "table", "placement": "right", "showLegend": true, "calcs": []any{"max", "lastNotNull"}, "sortBy": "Max", "sortDesc": true},
}

// vigilRows are the dashboard's panels, row by row.
func vigilRows() []row {
	lockdown := valueMap("0", "off", "green", "1", "read-only", "orange", "2", "full", "red")
	upDown := valueMap("0", "down", "red", "1", "up", "green")
	breaker := valueMap("0", "closed", "green", "1", "open", "red")

	up := stat("Up", "none", "Whether Prometheus could scrape each selected Vigil (up).",
		q(sel("up", ""), "{{instance}}"))
	up.mappings, up.thresholds = upDown, steps("red", 1, "green")
	lock := stat("Lockdown", "none", "Emergency lockdown: off, read-only (only GET, HEAD, OPTIONS pass) or full (every request refused). Kept in Redis, so every instance reports the same state.",
		q("max("+sel("vigil_respond_lockdown_active", "")+")", "lockdown"))
	lock.mappings, lock.thresholds = lockdown, steps("green", 1, "orange", 2, "red")
	brk := stat("Breakers open", "none", "Circuit breakers open now: while one is open, automatic bans of its scope are stopped.",
		q("sum("+sel("vigil_respond_breaker_open", "")+")", "open"))
	brk.thresholds = steps("green", 1, "red")
	lagStat := stat("Lag p99", "s", "99th percentile of wall clock minus event time when the detector sees an event.",
		q(quantile("0.99", "vigil_detect_lag_seconds"), "p99"))
	lagStat.thresholds = steps("green", 10, "orange", 60, "red")
	backlog := stat("Consumer backlog", "none", "Messages in JetStream not yet delivered to Vigil's consumers (detector and responder), all streams.",
		q("sum("+sel("vigil_bus_consumer_pending_messages", "")+")", "pending"))
	backlog.thresholds = steps("green", 1000, "orange")

	tail := timeseries(8, "Files followed and bytes read", "Bps", "Bytes the tailer read per second, and the number of access log files it follows (right axis).",
		q("sum("+rate("vigil_tail_read_bytes_total", "")+")", "bytes read"),
		q("sum("+sel("vigil_tail_files", "")+")", "files followed"))
	tail.overrides = []any{rightAxis("B", "none")}

	actions := timeseries(12, "Actions by kind and result", "cpm", "Responder actions per minute, automatic and manual, by kind (ban, jti_deny, revoke_user, lockdown, …) and result (applied, unchanged, skipped-allowlisted, dry-run, failed, breaker-open, refused).",
		q("60 * sum by (action, result) ("+rate("vigil_respond_actions_total", "")+")", "{{action}} {{result}}"))
	actions.options = tableLegend
	writeErrs := timeseries(12, "Redis and Elasticsearch write errors", "cpm", "Failed responder actions per minute (almost always Redis refusing or not answering) and Elasticsearch indexing errors per minute by kind. The Elasticsearch query falls back to 0 when Vigil runs without Elasticsearch.",
		q("60 * sum by (action) ("+rate("vigil_respond_actions_total", `result="failed"`)+")", "Redis: {{action}} failed"),
		q("60 * sum by (kind) ("+rate("vigil_index_errors_total", "")+") or vector(0)", "Elasticsearch: {{kind}}"))

	detections := timeseries(8, "Detections per rule", "cpm", "Detections per minute by rule.",
		q("60 * sum by (rule) ("+rate("vigil_detect_detections_total", "")+")", "{{rule}}"))
	detections.options = tableLegend

	pending := timeseries(12, "JetStream consumer backlog", "none", "Per consumer: messages in the stream not yet delivered (pending) and delivered but not yet acknowledged (awaiting ack). A pending count that keeps rising means that stage cannot keep up.",
		q("sum by (stream, consumer) ("+sel("vigil_bus_consumer_pending_messages", "")+")", "{{stream}} → {{consumer}} pending"),
		q("sum by (stream, consumer) ("+sel("vigil_bus_consumer_ack_pending_messages", "")+")", "{{stream}} → {{consumer}} awaiting ack"))

	cpu := timeseries(6, "CPU", "percentunit", "CPU time used per second (1 = one core).",
		q(rate("process_cpu_seconds_total", ""), "{{instance}}"))

	return []row{
		{title: "Overview", panels: []panel{
			up,
			stat("Events ingested /s", "cps", "Events read and normalised per second, all sources.",
				q("sum("+rate("vigil_ingest_events_total", "")+")", "events/s")),
			stat("Detections", "none", "Detections in the dashboard's time range, all rules.",
				q("sum(increase("+sel("vigil_detect_detections_total", "")+"[$__range]))", "detections")),
			stat("Bans active", "none", "IP bans in the Redis ban index not yet expired (shared by every instance, so the largest report is shown).",
				q("max("+sel("vigil_respond_bans_active", "")+")", "bans")),
			lock, brk, backlog, lagStat,
		}},
		{title: "Ingest", panels: []panel{
			timeseries(12, "Events ingested by source and format", "cps", "Events read and normalised per second by source (access, csp, app) and format, and events acknowledged by JetStream per source.",
				q("sum by (source, format) ("+rate("vigil_ingest_events_total", "")+")", "{{source}} {{format}}"),
				q("sum by (source) ("+rate("vigil_ingest_events_published_total", "")+")", "{{source}} published")),
			timeseries(12, "Lines skipped by reason", "cps", "Malformed input skipped per second, by source and reason (truncated, bad-time, bad-ip, malformed, …); scanners' probes (TLS handshakes, garbage request lines) are events, not skipped. Empty until the first malformed line.",
				q("sum by (source, reason) ("+rate("vigil_ingest_lines_skipped_total", "")+")", "{{source}} {{reason}}")),
			tail,
			timeseries(8, "Public listener requests by code", "reqps", "Requests per second to the public listener (CSP reports, /reports, /events) by endpoint and status code. Empty until the first request.",
				q("sum by (endpoint, code) ("+rate("vigil_http_requests_total", "")+")", "{{endpoint}} {{code}}")),
			timeseries(8, "Requests rate limited", "reqps", "Requests per second refused (429) by the per-client rate limit, by endpoint. Empty until the first refusal.",
				q("sum by (endpoint) ("+rate("vigil_http_rate_limited_total", "")+")", "{{endpoint}}")),
		}},
		{title: "Detect", panels: []panel{
			timeseries(8, "Pipeline lag", "s", "Wall clock minus event time when the detector sees an event: how late detections are. High after start-up on old logs or while a backlog drains.",
				q(quantile("0.5", "vigil_detect_lag_seconds"), "p50"),
				q(quantile("0.9", "vigil_detect_lag_seconds"), "p90"),
				q(quantile("0.99", "vigil_detect_lag_seconds"), "p99")),
			detections,
			timeseries(8, "Alerts published", "cpm", "Alerts stored in VIGIL_ALERTS per minute.",
				q("60 * sum("+rate("vigil_detect_alerts_published_total", "")+")", "alerts")),
			timeseries(8, "Events not counted by the detector", "cps", "Events the detector read but did not count, per second: late (beyond lateness for their key), stale, future, suppressed and undecodable.",
				q("sum("+rate("vigil_detect_events_late_total", "")+")", "late"),
				q("sum("+rate("vigil_detect_events_stale_total", "")+")", "stale"),
				q("sum("+rate("vigil_detect_events_future_total", "")+")", "future"),
				q("sum("+rate("vigil_detect_events_suppressed_total", "")+")", "suppressed"),
				q("sum("+rate("vigil_detect_events_undecodable_total", "")+")", "undecodable")),
			timeseries(8, "Detector windows", "none", "Keys with a rule window now, and keys in cooldown after a detection.",
				q("sum("+sel("vigil_detect_keys_tracked", "")+")", "tracked"),
				q("sum("+sel("vigil_detect_keys_cooldown", "")+")", "in cooldown")),
			timeseries(8, "Active detector and take-overs", "none", "Which detect process holds the events consumer (1; standbys 0), and take-overs per hour: rebuilt = windows rebuilt from the stream (start-up, from another detector), own = a detector that got its pin back.",
				q("max by (instance) ("+sel("vigil_detect_active", "")+")", "{{instance}} active"),
				q("3600 * sum by (rebuilt) ("+rate("vigil_detect_takeovers_total", "")+")", "take-overs/h rebuilt={{rebuilt}}")),
		}},
		{title: "Respond", panels: []panel{
			actions,
			writeErrs,
			timeseries(8, "Bans active", "none", "IP bans in the Redis ban index not yet expired (shared by every instance, so the largest report is shown).",
				q("max("+sel("vigil_respond_bans_active", "")+")", "bans active")),
			timeline(8, "Lockdown state", "Emergency lockdown: off, read-only or full.", lockdown,
				q("max("+sel("vigil_respond_lockdown_active", "")+")", "lockdown")),
			timeline(8, "Circuit breakers", "Each circuit breaker (overall, rule:<id>): open while it stops automatic bans.", breaker,
				q("max by (scope) ("+sel("vigil_respond_breaker_open", "")+")", "{{scope}}")),
		}},
		{title: "JetStream and Elasticsearch", panels: []panel{
			pending,
			timeseries(6, "Elasticsearch documents", "cps", "Documents sent to Elasticsearch per second by kind and result. Empty when Vigil runs without Elasticsearch.",
				q("sum by (kind, result) ("+rate("vigil_index_documents_total", "")+")", "{{kind}} {{result}}")),
			timeseries(6, "Elasticsearch bulk latency", "s", "Duration of bulk requests to Elasticsearch. Empty when Vigil runs without Elasticsearch.",
				q(quantile("0.5", "vigil_index_bulk_seconds"), "p50"),
				q(quantile("0.99", "vigil_index_bulk_seconds"), "p99")),
		}},
		{title: "Process", panels: []panel{
			timeline(6, "Up", "Whether Prometheus could scrape each selected Vigil.", upDown,
				q(sel("up", ""), "{{instance}}")),
			timeseries(6, "Memory", "bytes", "Resident memory of the process and Go heap in use.",
				q(sel("process_resident_memory_bytes", ""), "{{instance}} resident"),
				q(sel("go_memstats_heap_inuse_bytes", ""), "{{instance}} heap in use")),
			cpu,
			timeseries(6, "Goroutines", "none", "Goroutines of the process.",
				q(sel("go_goroutines", ""), "{{instance}}")),
		}},
	}
}

// vigilDashboard returns the dashboard model: what Grafana's file
// provisioning reads (not wrapped for the HTTP API).
func vigilDashboard() map[string]any {
	var panels []any
	id, y := 1, 0
	for _, r := range vigilRows() {
		panels = append(panels, map[string]any{
			"type": "row", "id": id, "title": r.title, "collapsed": false, "panels": []any{},
			"gridPos": map[string]any{"h": 1, "w": 24, "x": 0, "y": y},
		})
		id++
		y++
		x, rowH := 0, 0
		for _, p := range r.panels {
			if x+p.width > 24 {
				x, y, rowH = 0, y+rowH, 0
			}
			panels = append(panels, p.model(id, x, y))
			id++
			x += p.width
			rowH = max(rowH, p.height)
		}
		y += rowH
	}
	return map[string]any{
		"annotations": map[string]any{"list": []any{map[string]any{
			"builtIn": 1, "datasource": map[string]any{"type": "grafana", "uid": "-- Grafana --"},
			"enable": true, "hide": true, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
		}}},
		"description":          "Vigil's pipeline (ingest → JetStream → detect → respond) and its responses (bans, lockdown, circuit breakers), from its Prometheus metrics. Generated by dashboards/grafana_gen_test.go.",
		"editable":             true,
		"fiscalYearStartMonth": 0,
		"graphTooltip":         1,
		"id":                   nil,
		"links":                []any{},
		"panels":               panels,
		"refresh":              "30s",
		"schemaVersion":        39,
		"tags":                 []any{"vigil", "security"},
		"templating": map[string]any{"list": []any{
			map[string]any{
				"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
				"current": map[string]any{}, "hide": 0, "includeAll": false, "multi": false, "options": []any{}, "refresh": 1, "regex": "",
			},
			map[string]any{
				"name": "instance", "label": "Instance", "type": "query", "datasource": ds,
				"definition": "label_values(vigil_detect_events_total, instance)",
				"query": map[string]any{
					"qryType": 1, "query": "label_values(vigil_detect_events_total, instance)", "refId": "PrometheusVariableQueryEditor-VariableQuery",
				},
				"current": map[string]any{}, "hide": 0, "includeAll": true, "multi": true, "options": []any{}, "refresh": 2, "regex": "", "sort": 1,
			},
		}},
		"time":       map[string]any{"from": "now-6h", "to": "now"},
		"timepicker": map[string]any{},
		"timezone":   "browser",
		"title":      "Vigil — pipeline and response",
		"uid":        "vigil-overview",
		"version":    1,
		"weekStart":  "",
	}
}

// model returns the panel's JSON model with the given id and position.
func (p panel) model(id, x, y int) map[string]any {
	var targets []any
	for i, q := range p.queries {
		targets = append(targets, map[string]any{
			"datasource": ds, "editorMode": "code", "expr": q.expr, "legendFormat": q.legend,
			"range": true, "refId": string(rune('A' + i)),
		})
	}
	thresholds := p.thresholds
	if thresholds == nil {
		thresholds = steps("green")
	}
	defaults := map[string]any{
		"unit":       p.unit,
		"color":      map[string]any{"mode": "palette-classic"},
		"thresholds": map[string]any{"mode": "absolute", "steps": thresholds},
		"mappings":   []any{},
	}
	if p.mappings != nil {
		defaults["mappings"] = p.mappings
	}
	if p.min != nil {
		defaults["min"] = *p.min
	}
	var options map[string]any
	switch p.kind {
	case "timeseries":
		defaults["custom"] = merge(map[string]any{
			"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": false,
			"axisPlacement": "auto", "stacking": map[string]any{"group": "A", "mode": "none"},
		}, p.custom)
		options = map[string]any{
			"legend":  map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true, "calcs": []any{}},
			"tooltip": map[string]any{"mode": "multi", "sort": "desc"},
		}
	case "stat":
		defaults["color"] = map[string]any{"mode": "thresholds"}
		options = map[string]any{
			"reduceOptions": map[string]any{"calcs": []any{"lastNotNull"}, "fields": "", "values": false},
			"colorMode":     "value", "graphMode": "area", "justifyMode": "auto", "orientation": "auto", "textMode": "auto",
		}
	case "state-timeline":
		defaults["color"] = map[string]any{"mode": "thresholds"}
		defaults["custom"] = merge(map[string]any{"fillOpacity": 80, "lineWidth": 0}, p.custom)
		options = map[string]any{
			"showValue": "auto", "mergeValues": true, "rowHeight": 0.9, "alignValue": "left",
			"legend":  map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true},
			"tooltip": map[string]any{"mode": "single", "sort": "none"},
		}
	}
	overrides := p.overrides
	if overrides == nil {
		overrides = []any{}
	}
	return map[string]any{
		"id": id, "type": p.kind, "title": p.title, "description": p.description, "datasource": ds,
		"gridPos":     map[string]any{"h": p.height, "w": p.width, "x": x, "y": y},
		"fieldConfig": map[string]any{"defaults": defaults, "overrides": overrides},
		"options":     merge(options, p.options),
		"targets":     targets,
	}
}

// merge returns base with the keys of over set over it.
func merge(base, over map[string]any) map[string]any {
	for k, v := range over {
		base[k] = v
	}
	return base
}

// targetExprs returns every query expression of the dashboard with the
// title of its panel, in panel order.
func targetExprs(t *testing.T, dash []byte) []panelQuery {
	t.Helper()
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("decoding %s: %v", dashboardPath, err)
	}
	var out []panelQuery
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, panelQuery{panel: p.Title, refID: tg.RefID, expr: strings.TrimSpace(tg.Expr)})
		}
	}
	return out
}

// panelQuery is one query of the dashboard.
type panelQuery struct {
	panel, refID, expr string
}
