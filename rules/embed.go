// Package rules holds Vigil's default rule pack, embedded in the binary, and
// its fixtures: each rules file name.yaml may have a name.test.yaml beside it
// with sample log lines and the detections they must produce (run them with
// `vigil rules test`).
package rules

import "embed"

// FS is the default rule pack: the *.yaml files at its root, fixtures
// (*.test.yaml) and their log files under testdata/.
//
//go:embed *.yaml testdata
var FS embed.FS
