package detect

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ruleKeys and friends list the keys each YAML mapping may have: decoding is
// strict, and a misspelt key is an error naming its line.
var (
	fileKeys     = []string{"rules"}
	ruleKeys     = []string{"id", "description", "source", "match", "group_by", "window", "threshold", "distinct", "severity", "cooldown", "baseline", "novelty", "after", "actions", "disabled"}
	baselineKeys = []string{"factor", "learn"}
	noveltyKeys  = []string{"field", "learn"}
	matchKeys    = []string{"status", "method", "path", "path_prefix", "signature", "action", "name", "not_name"}
	actionsKeys  = []string{"ban", "revoke_user", "lockdown"}
	afterKeys    = []string{"rule", "within"}
)

// IsRuleFile reports whether name is a rules file: *.yaml or *.yml, but not a
// fixture file (*.test.yaml).
func IsRuleFile(name string) bool {
	ext := path.Ext(name)
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	return !strings.HasSuffix(strings.TrimSuffix(name, ext), ".test")
}

// LoadDir loads every rules file in the directory dir of the host file system.
func LoadDir(dir string) ([]*Rule, error) {
	return LoadFS(os.DirFS(dir), ".", dir)
}

// LoadFS loads every rules file in dir of fsys, in name order. display is how
// file names are shown in errors (a directory prefix). Disabled rules are
// dropped after validation. All problems of all files are returned together
// as Errors.
func LoadFS(fsys fs.FS, dir, display string) ([]*Rule, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading rules directory: %w", err)
	}
	var (
		rules []*Rule
		errs  Errors
		seen  = map[string]*Rule{}
	)
	for _, e := range entries {
		if e.IsDir() || !IsRuleFile(e.Name()) {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading rules file: %w", err)
		}
		name := e.Name()
		if display != "" {
			name = path.Join(display, name)
		}
		rs, ferrs := Parse(name, data)
		errs = append(errs, ferrs...)
		for _, r := range rs {
			if prev, ok := seen[r.ID]; ok {
				errs = append(errs, &FieldError{File: r.File, Line: r.Line, Rule: r.ID, Field: "id",
					Msg: fmt.Sprintf("duplicate: also defined at %s:%d", prev.File, prev.Line)})
				continue
			}
			seen[r.ID] = r
			rules = append(rules, r)
		}
	}
	for _, r := range rules {
		if r.After == nil {
			continue
		}
		prev, ok := seen[r.After.Rule]
		switch {
		case !ok:
			errs = append(errs, &FieldError{File: r.File, Line: r.lines["after.rule"], Rule: r.ID, Field: "after.rule", Msg: fmt.Sprintf("no rule %q", r.After.Rule)})
		case prev.GroupBy != r.GroupBy:
			errs = append(errs, &FieldError{File: r.File, Line: r.lines["after.rule"], Rule: r.ID, Field: "after.rule",
				Msg: fmt.Sprintf("%q groups by %s, this rule by %s: they must group by the same field", prev.ID, prev.GroupBy, r.GroupBy)})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("no rules in %s: expected *.yaml files with a top-level 'rules:' list", display)
	}
	enabled := rules[:0]
	for _, r := range rules {
		if !r.Disabled {
			enabled = append(enabled, r)
		}
	}
	return enabled, nil
}

// Parse parses one rules file, applies defaults and validates every rule. It
// returns the rules that are valid and every problem found.
func Parse(file string, data []byte) ([]*Rule, Errors) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, Errors{{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if len(doc.Content) == 0 {
		return nil, Errors{{File: file, Msg: "empty file: expected a top-level 'rules:' list"}}
	}
	root := doc.Content[0]
	var errs Errors
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{File: file, Line: root.Line, Msg: "expected a mapping with a 'rules:' list"}}
	}
	errs = append(errs, unknownKeys(file, "", "", root, fileKeys)...)
	list := mapValue(root, "rules")
	if list == nil {
		return nil, append(errs, &FieldError{File: file, Line: root.Line, Field: "rules", Msg: "must be set"})
	}
	if list.Kind != yaml.SequenceNode {
		return nil, append(errs, &FieldError{File: file, Line: list.Line, Field: "rules", Msg: "must be a list"})
	}
	var rules []*Rule
	for _, n := range list.Content {
		r, rerrs := parseRule(file, n)
		errs = append(errs, rerrs...)
		if r != nil && len(rerrs) == 0 {
			rules = append(rules, r)
		}
	}
	return rules, errs
}

func parseRule(file string, n *yaml.Node) (*Rule, Errors) {
	if n.Kind != yaml.MappingNode {
		return nil, Errors{{File: file, Line: n.Line, Msg: "a rule must be a mapping"}}
	}
	r := &Rule{File: file, Line: n.Line, lines: map[string]int{}}
	if id := mapValue(n, "id"); id != nil {
		r.ID = id.Value
	}
	errs := unknownKeys(file, r.ID, "", n, ruleKeys)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		r.lines[k.Value] = k.Line
		var err error
		switch k.Value {
		case "match":
			errs = append(errs, unknownKeys(file, r.ID, "match.", v, matchKeys)...)
			recordLines(r.lines, "match.", v)
			err = v.Decode(&r.Match)
		case "actions":
			errs = append(errs, unknownKeys(file, r.ID, "actions.", v, actionsKeys)...)
			recordLines(r.lines, "actions.", v)
			err = v.Decode(&r.Actions)
		case "baseline":
			errs = append(errs, unknownKeys(file, r.ID, "baseline.", v, baselineKeys)...)
			recordLines(r.lines, "baseline.", v)
			r.Baseline = &Baseline{}
			err = v.Decode(r.Baseline)
		case "after":
			errs = append(errs, unknownKeys(file, r.ID, "after.", v, afterKeys)...)
			recordLines(r.lines, "after.", v)
			r.After = &After{}
			err = v.Decode(r.After)
		case "novelty":
			errs = append(errs, unknownKeys(file, r.ID, "novelty.", v, noveltyKeys)...)
			recordLines(r.lines, "novelty.", v)
			r.Novelty = &Novelty{}
			err = v.Decode(r.Novelty)
		default:
			err = decodeField(r, k.Value, v)
		}
		if err != nil {
			errs = append(errs, &FieldError{File: file, Line: v.Line, Rule: r.ID, Field: k.Value, Msg: yamlMsg(err)})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if r.Source == "" {
		r.Source = "access"
	}
	if r.GroupBy == "" {
		r.GroupBy = FieldSourceIP
	}
	if r.Severity == "" {
		r.Severity = defaultSeverity
	}
	if errs := r.validate(); len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}

// decodeField decodes the value of one top-level rule key.
func decodeField(r *Rule, key string, v *yaml.Node) error {
	switch key {
	case "id":
		return v.Decode(&r.ID)
	case "description":
		return v.Decode(&r.Description)
	case "source":
		return v.Decode(&r.Source)
	case "group_by":
		return v.Decode(&r.GroupBy)
	case "window":
		return v.Decode(&r.Window)
	case "threshold":
		return v.Decode(&r.Threshold)
	case "distinct":
		return v.Decode(&r.Distinct)
	case "severity":
		return v.Decode(&r.Severity)
	case "cooldown":
		return v.Decode(&r.Cooldown)
	case "disabled":
		return v.Decode(&r.Disabled)
	}
	return nil // unknown keys are reported by unknownKeys
}

// yamlMsg makes a yaml.v3 decode error read as a field message.
func yamlMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "line ") {
		msg = msg[i+2:]
	}
	return msg
}

func recordLines(lines map[string]int, prefix string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		lines[prefix+n.Content[i].Value] = n.Content[i].Line
	}
}

// unknownKeys reports keys of mapping n that are not in allowed, and n not
// being a mapping at all.
func unknownKeys(file, rule, prefix string, n *yaml.Node, allowed []string) Errors {
	if n.Kind != yaml.MappingNode {
		return Errors{{File: file, Line: n.Line, Rule: rule, Field: strings.TrimSuffix(prefix, "."), Msg: "must be a mapping"}}
	}
	var errs Errors
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(allowed, k.Value) {
			sorted := append([]string(nil), allowed...)
			sort.Strings(sorted)
			errs = append(errs, &FieldError{File: file, Line: k.Line, Rule: rule, Field: prefix + k.Value,
				Msg: "unknown field (known: " + strings.Join(sorted, ", ") + ")"})
		}
	}
	return errs
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
