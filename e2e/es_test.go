package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/app"
	"github.com/vigil-soc/vigil/internal/estest"
	"github.com/vigil-soc/vigil/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(estest.Main(m)) }

// TestRunIndexesIntoElasticsearch: `vigil run --es URL` indexes the access
// events, the alert and the ban's audit entry of a scan into a real
// Elasticsearch.
func TestRunIndexesIntoElasticsearch(t *testing.T) {
	es := estest.Start(t)
	rs := redistest.Start(t)
	ns := es.Namespace(t)
	logs := t.TempDir()
	runVigil(t, rs, func(c *app.Config) {
		c.AccessLogs = []string{filepath.Join(logs, "*.log")}
		c.ES, c.ESNamespace = []string{es.URL}, ns
	})

	var b strings.Builder
	now := time.Now().UTC().Format("02/Jan/2006:15:04:05 -0700")
	for i := range 60 {
		fmt.Fprintf(&b, "203.0.113.44 - - [%s] \"GET /wp-%d.php HTTP/1.1\" 404 162 \"-\" \"gobuster/3.6\"\n", now, i)
	}
	if err := os.WriteFile(filepath.Join(logs, "access.log"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	count := func(target, query string) int {
		code, body := es.Request(t, "GET", "/"+target+"/_count?q="+query, nil)
		if code != 200 {
			return -1
		}
		var r struct{ Count int }
		json.Unmarshal(body, &r)
		return r.Count
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		events := count("logs-vigil.access-"+ns, "source.ip:%22203.0.113.44%22")
		alerts := count("logs-vigil.alerts-"+ns, "rule:http-404-scan")
		audits := count("logs-vigil.audit-"+ns, "action:ban")
		if events == 60 && alerts == 1 && audits == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("in Elasticsearch after 60 s: %d events (want 60), %d alerts (want 1), %d audits (want 1)", events, alerts, audits)
		}
		es.Request(t, "POST", "/logs-vigil.*-"+ns+"/_refresh", nil)
		time.Sleep(500 * time.Millisecond)
	}
}
