// Package kibana holds Vigil's Kibana saved objects (vigil.ndjson, written
// by generate.py) and the test that checks them against a real
// Elasticsearch: Kibana itself cannot run here, so what can break — a field
// an object references that the indices do not have, or have with a type
// the visualization cannot use — is checked against the mapping the
// cluster actually holds after Vigil's set-up.
package kibana

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vigil-soc/vigil/index"
	"github.com/vigil-soc/vigil/internal/estest"
)

func TestMain(m *testing.M) { os.Exit(estest.Main(m)) }

type object struct {
	Type       string          `json:"type"`
	ID         string          `json:"id"`
	Attributes json.RawMessage `json:"attributes"`
	References []struct {
		Name, Type, ID string
	} `json:"references"`
}

func load(t *testing.T) map[string]object {
	f, err := os.Open("vigil.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs := map[string]object{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var o object
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("vigil.ndjson:%d: %v", n, err)
		}
		if o.Type == "" || o.ID == "" || len(o.Attributes) == 0 {
			t.Fatalf("vigil.ndjson:%d: type, id and attributes are required", n)
		}
		if _, dup := objs[o.ID]; dup {
			t.Fatalf("vigil.ndjson:%d: duplicate id %s", n, o.ID)
		}
		objs[o.ID] = o
	}
	return objs
}

// use is one field an object uses, and how.
type use struct {
	object, view, field, how string // how: terms, date_histogram, column, query
}

var kqlField = regexp.MustCompile(`([a-z_@][a-z0-9_.@]*)\s*:`)

// uses lists every field reference of the objects.
func uses(t *testing.T, objs map[string]object) []use {
	var out []use
	for _, o := range objs {
		view := ""
		for _, r := range o.References {
			if r.Type == "index-pattern" {
				view = r.ID
			}
			if _, ok := objs[r.ID]; !ok {
				t.Errorf("%s %s references %s %s, not in the file", o.Type, o.ID, r.Type, r.ID)
			}
		}
		var attrs struct {
			VisState string   `json:"visState"`
			Columns  []string `json:"columns"`
			Sort     [][]any  `json:"sort"`
			Meta     struct {
				SearchSourceJSON string `json:"searchSourceJSON"`
			} `json:"kibanaSavedObjectMeta"`
			TimeField string `json:"timeFieldName"`
		}
		if err := json.Unmarshal(o.Attributes, &attrs); err != nil {
			t.Fatalf("%s: %v", o.ID, err)
		}
		if o.Type == "index-pattern" {
			out = append(out, use{o.ID, o.ID, attrs.TimeField, "date_histogram"})
			continue
		}
		if attrs.VisState != "" {
			var vs struct {
				Aggs []struct {
					Type   string
					Params struct{ Field string }
				}
			}
			if err := json.Unmarshal([]byte(attrs.VisState), &vs); err != nil {
				t.Fatalf("%s: visState: %v", o.ID, err)
			}
			for _, a := range vs.Aggs {
				if a.Params.Field != "" {
					out = append(out, use{o.ID, view, a.Params.Field, a.Type})
				}
			}
		}
		for _, c := range attrs.Columns {
			out = append(out, use{o.ID, view, c, "column"})
		}
		for _, s := range attrs.Sort {
			if f, ok := s[0].(string); ok {
				out = append(out, use{o.ID, view, f, "date_histogram"})
			}
		}
		if attrs.Meta.SearchSourceJSON != "" {
			var ss struct {
				Query struct{ Query string }
			}
			if err := json.Unmarshal([]byte(attrs.Meta.SearchSourceJSON), &ss); err != nil {
				t.Fatalf("%s: searchSourceJSON: %v", o.ID, err)
			}
			for _, m := range kqlField.FindAllStringSubmatch(ss.Query.Query, -1) {
				out = append(out, use{o.ID, view, m[1], "query"})
			}
		}
	}
	return out
}

// kindsOf maps a data view's title to the index kinds it covers.
func kindsOf(t *testing.T, title string) []string {
	var kinds []string
	for _, pattern := range strings.Split(title, ",") {
		k := strings.TrimSuffix(strings.TrimPrefix(pattern, "logs-vigil."), "-*")
		found := false
		for _, known := range index.Kinds {
			if k == known {
				found = true
			}
		}
		if !found {
			t.Fatalf("data view %q: %q is not one of Vigil's index families", title, pattern)
		}
		kinds = append(kinds, k)
	}
	return kinds
}

// flatten turns a mapping's properties into field → type, multi-fields
// included (url.original.text).
func flatten(prefix string, props map[string]any, out map[string]string) {
	for name, v := range props {
		m, _ := v.(map[string]any)
		full := prefix + name
		if sub, ok := m["properties"].(map[string]any); ok {
			flatten(full+".", sub, out)
			continue
		}
		if typ, ok := m["type"].(string); ok {
			out[full] = typ
		}
		if fields, ok := m["fields"].(map[string]any); ok {
			flatten(full+".", fields, out)
		}
	}
}

// compatible says whether a field type serves a use.
func compatible(how, typ string) bool {
	switch how {
	case "terms":
		return typ == "keyword" || typ == "ip" || typ == "long" || typ == "boolean" || typ == "integer" || typ == "short"
	case "date_histogram":
		return typ == "date"
	}
	return true // columns and queries work on any indexed field
}

// TestSavedObjectsMatchTheRealMapping sets Vigil's indices up on a real
// Elasticsearch and checks every field every saved object uses.
func TestSavedObjectsMatchTheRealMapping(t *testing.T) {
	objs := load(t)
	es := estest.Start(t)
	ns := es.Namespace(t)
	cluster, err := index.NewCluster(index.Config{Addresses: []string{es.URL}, Namespace: ns}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	mapping := map[string]map[string]string{} // kind → field → type
	for _, kind := range index.Kinds {
		code, body := es.Request(t, "GET", "/"+cluster.Target(kind)+"/_mapping", nil)
		if code != 200 {
			t.Fatalf("GET %s/_mapping: %d %s", cluster.Target(kind), code, body)
		}
		var resp map[string]struct {
			Mappings struct {
				Properties map[string]any `json:"properties"`
			} `json:"mappings"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		fields := map[string]string{}
		for _, idx := range resp {
			flatten("", idx.Mappings.Properties, fields)
		}
		mapping[kind] = fields
	}
	titles := map[string]string{}
	for _, o := range objs {
		if o.Type == "index-pattern" {
			var a struct{ Title string }
			json.Unmarshal(o.Attributes, &a)
			titles[o.ID] = a.Title
		}
	}
	checked := 0
	for _, u := range uses(t, objs) {
		title, ok := titles[u.view]
		if !ok {
			t.Errorf("%s uses no data view", u.object)
			continue
		}
		for _, kind := range kindsOf(t, title) {
			typ, ok := mapping[kind][u.field]
			switch {
			case !ok:
				t.Errorf("%s (%s on %s): field %q is not in the %s mapping", u.object, u.how, u.view, u.field, kind)
			case !compatible(u.how, typ):
				t.Errorf("%s: %s on %q needs a different type than %s (%s mapping)", u.object, u.how, u.field, typ, kind)
			default:
				checked++
			}
		}
	}
	if checked < 30 {
		t.Fatalf("only %d field uses checked", checked)
	}
	var names []string
	for id := range objs {
		names = append(names, id)
	}
	sort.Strings(names)
	t.Logf("%d objects, %d field uses checked against %s", len(objs), checked, es.URL)
}

// The dashboard has the panels the README promises.
func TestDashboardPanels(t *testing.T) {
	objs := load(t)
	d, ok := objs["vigil-security-overview"]
	if !ok {
		t.Fatal("no dashboard vigil-security-overview")
	}
	want := []string{"vigil-events-per-source", "vigil-top-404-scanners", "vigil-csp-origins-per-page",
		"vigil-auth-failures-user", "vigil-auth-failures-ip", "vigil-bans-lockdowns", "vigil-alert-table"}
	have := map[string]bool{}
	for _, r := range d.References {
		have[r.ID] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("dashboard lacks %s", w)
		}
	}
}
