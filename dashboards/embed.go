// Package dashboards holds what Vigil's operators load into their
// monitoring: the Grafana dashboard "Vigil — pipeline and response"
// (grafana/vigil.json) with file-provisioning examples
// (grafana/provisioning/), and the Prometheus alert rules
// (prometheus/vigil-alerts.yml), their promtool unit tests and an example
// scrape configuration (prometheus/).
//
// The dashboard is generated: its panels are defined in
// grafana_gen_test.go and written with
//
//	go test ./dashboards -run TestGrafanaDashboardGolden -update
//
// The package's tests check the rules with promtool and evaluate every
// panel query against a real Prometheus scraping a real `vigil run`.
package dashboards

import "embed"

// FS holds the files of the grafana/ and prometheus/ directories under
// those paths, e.g. "grafana/vigil.json" and
// "prometheus/vigil-alerts.yml", for a command that wants to write them
// out.
//
//go:embed grafana prometheus
var FS embed.FS
