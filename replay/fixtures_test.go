package replay

import (
	"context"
	"testing"

	"github.com/vigil-soc/vigil/detect"
	"github.com/vigil-soc/vigil/rules"
)

// TestDefaultPackFixtures runs the fixtures shipped with the default pack.
func TestDefaultPackFixtures(t *testing.T) {
	rs, err := detect.LoadFS(rules.FS, ".", "rules")
	if err != nil {
		t.Fatal(err)
	}
	allow, _ := detect.NewAllowlist(detect.DefaultAllowlist)
	results, err := RunFixtures(context.Background(), rules.FS, ".", "rules", detect.Compile(rs), allow)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 3 {
		t.Fatalf("only %d fixtures ran", len(results))
	}
	for _, r := range results {
		for _, f := range r.Failures {
			t.Errorf("%s: %s: %s", r.File, r.Name, f)
		}
	}
}
