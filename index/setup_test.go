package index

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/internal/estest"
)

// aliasIndices returns the indices behind alias and its write index.
func (e *env) aliasIndices(t *testing.T, alias string) (indices []string, write string) {
	t.Helper()
	status, body := e.es.Request(t, "GET", "/_alias/"+alias, nil)
	if status != 200 {
		t.Fatalf("GET /_alias/%s: %d %s", alias, status, body)
	}
	var r map[string]struct {
		Aliases map[string]struct {
			IsWriteIndex bool `json:"is_write_index"`
		} `json:"aliases"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	for idx, a := range r {
		indices = append(indices, idx)
		if a.Aliases[alias].IsWriteIndex {
			write = idx
		}
	}
	slices.Sort(indices)
	return indices, write
}

// templateVersion returns _meta.version of an index template, -1 if there
// is none.
func (e *env) templateVersion(t *testing.T, name string) int {
	t.Helper()
	status, body := e.es.Request(t, "GET", "/_index_template/"+name, nil)
	if status == 404 {
		return -1
	}
	var r struct {
		IndexTemplates []struct {
			IndexTemplate struct {
				Priority int
				Meta     struct{ Version int } `json:"_meta"`
			} `json:"index_template"`
		} `json:"index_templates"`
	}
	if err := json.Unmarshal(body, &r); err != nil || len(r.IndexTemplates) != 1 {
		t.Fatalf("GET /_index_template/%s: %d %s", name, status, body)
	}
	if p := r.IndexTemplates[0].IndexTemplate.Priority; p != templatePriority {
		t.Errorf("%s has priority %d, want %d", name, p, templatePriority)
	}
	return r.IndexTemplates[0].IndexTemplate.Meta.Version
}

// TestSetupUpgradesAndIsIdempotent installs templates of an older version
// and indices made from them, as an older Vigil would have, then runs
// Setup: the templates are replaced, the write indices get the new mappings
// (in place when they are compatible, by a rollover when they conflict),
// and running Setup again changes nothing.
func TestSetupUpgradesAndIsIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, kind := range Kinds {
		props := map[string]any{"@timestamp": map[string]any{"type": "date"}}
		if kind == KindAccess {
			// Conflicts with the current mapping (ip).
			props["source"] = map[string]any{"properties": map[string]any{"ip": map[string]any{"type": "keyword"}}}
		}
		if s, b := e.es.Request(t, "PUT", "/_index_template/"+TemplateName(kind), map[string]any{
			"index_patterns": []string{TemplateName(kind) + "-*"},
			"priority":       templatePriority,
			"version":        0,
			"_meta":          map[string]any{"managed_by": "vigil", "version": 0, "mode": ModeIndex},
			"template": map[string]any{
				"settings": map[string]any{"number_of_shards": 1, "number_of_replicas": 0},
				"mappings": map[string]any{"dynamic": false, "properties": props},
			},
		}); s != 200 {
			t.Fatalf("installing an old template: %d %s", s, b)
		}
	}
	for _, kind := range []string{KindAccess, KindAlerts} {
		alias := Target(kind, e.ns)
		if s, b := e.es.Request(t, "PUT", "/"+alias+"-000001", map[string]any{
			"aliases": map[string]any{alias: map[string]any{"is_write_index": true}},
		}); s != 200 {
			t.Fatalf("bootstrapping %s: %d %s", alias, s, b)
		}
	}

	cfg := e.config()
	cfg.Mode = ModeIndex
	c, err := NewCluster(cfg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range TemplateNames() {
		if v := e.templateVersion(t, name); v != TemplateVersion {
			t.Errorf("%s has version %d after Setup, want %d", name, v, TemplateVersion)
		}
	}
	// Conflicting mappings: rolled over to an index from the new template.
	access := Target(KindAccess, e.ns)
	if _, write := e.aliasIndices(t, access); write != access+"-000002" {
		t.Errorf("write index of %s is %s, want %s-000002", access, write, access)
	}
	if typ := e.fieldType(t, access+"-000002", "source.ip"); typ != "ip" {
		t.Errorf("source.ip in the new access index is %q, want ip", typ)
	}
	// Compatible mappings: added to the write index in place.
	alerts := Target(KindAlerts, e.ns)
	if _, write := e.aliasIndices(t, alerts); write != alerts+"-000001" {
		t.Errorf("write index of %s is %s, want %s-000001", alerts, write, alerts)
	}
	if typ := e.fieldType(t, alerts+"-000001", "count"); typ != "long" {
		t.Errorf("count in the upgraded alerts index is %q, want long", typ)
	}
	// Families that had no index get their first one.
	for _, kind := range []string{KindCSP, KindApp, KindAudit} {
		alias := Target(kind, e.ns)
		if _, write := e.aliasIndices(t, alias); write != alias+"-000001" {
			t.Errorf("write index of %s is %q, want %s-000001", alias, write, alias)
		}
	}

	// Again, and from a new process in mode auto: nothing changes.
	before := map[string][]string{}
	for _, kind := range Kinds {
		before[kind], _ = e.aliasIndices(t, Target(kind, e.ns))
	}
	cfg.Mode = ModeAuto
	c2, err := NewCluster(cfg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*Cluster{c, c2} {
		if err := cl.Setup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if c2.Mode() != ModeIndex {
		t.Errorf("mode auto with existing aliases resolved to %q, want index", c2.Mode())
	}
	for _, kind := range Kinds {
		after, _ := e.aliasIndices(t, Target(kind, e.ns))
		if !slices.Equal(before[kind], after) {
			t.Errorf("Setup again changed the indices of %s: %v, then %v", kind, before[kind], after)
		}
	}
}

// TestModeAutoDetectsIndexMode checks that mode auto picks index mode on
// the integ-test distribution, which has no data streams.
func TestModeAutoDetectsIndexMode(t *testing.T) {
	if os.Getenv(estest.EnvURL) != "" {
		t.Skip("the cluster given by " + estest.EnvURL + " may have data streams")
	}
	e := newEnv(t)
	c, err := NewCluster(e.config(), e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.Mode() != ModeIndex {
		t.Fatalf("mode %q, want index", c.Mode())
	}
}

// TestRollover rolls every write alias over once its index is older than
// RolloverMaxAge, and not before.
func TestRollover(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Mode = ModeIndex
	cfg.RolloverMaxAge = time.Hour
	c, err := NewCluster(cfg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := c.Rollover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(Kinds) {
		t.Fatalf("Rollover returned %d results, want %d", len(res), len(Kinds))
	}
	for _, r := range res {
		if r.RolledOver {
			t.Errorf("%s rolled over before it was due", r.Target)
		}
	}

	cfg.RolloverMaxAge = time.Second
	c, err = NewCluster(cfg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if res, err = c.Rollover(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.RolledOver || r.NewIndex != r.Target+"-000002" {
			t.Errorf("rollover of %s: %+v", r.Target, r)
		}
		if _, write := e.aliasIndices(t, r.Target); write != r.Target+"-000002" {
			t.Errorf("write index of %s is %s after rollover", r.Target, write)
		}
	}
}
