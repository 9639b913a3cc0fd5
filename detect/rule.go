// Package detect is Vigil's rule engine: it matches events against rules and
// evaluates each rule over an event-time sliding window per key, firing an
// alert the moment a threshold is reached.
//
// The engine is split in two so the heavy, stateless half runs anywhere:
//
//   - A Matcher turns an event into Observations, one per rule the event
//     matches, carrying only the key, the event time and a hash of the value
//     counted. It is safe to run on many goroutines.
//   - An Engine keeps the per-key windows and fires. It is single-goroutine;
//     scale it out by key partition, never by sharing it.
//
// detect imports nothing of the bus or of Redis: `vigil replay` and the
// streaming detector feed the same Engine and get the same alerts.
package detect

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Key fields a rule can group by or count distinct values of.
const (
	FieldSourceIP = "source.ip"
	FieldUserName = "user.name"
	FieldURLPath  = "url.path"
	FieldURLOrig  = "url.original"
	FieldNone     = "none"
	FieldUserID   = "user.id"
	// FieldCSPDocument is the page of a CSP report: the document URI's
	// scheme, host and path, without query or fragment.
	FieldCSPDocument = "vigil.csp.document"
	// FieldCSPBlockedOrigin is the blocked origin (or keyword) of a CSP report.
	FieldCSPBlockedOrigin = "vigil.csp.blocked_origin"
	// FieldCSPDirective is the effective directive of a CSP report.
	FieldCSPDirective = "vigil.csp.effective_directive"
	defaultSeverity   = "medium"
)

// Signature classes a rule can match on (see signature.go).
const (
	SigPathTraversal   = "path-traversal"
	SigSQLInjection    = "sql-injection"
	SigScriptInjection = "script-injection"
)

var severities = []string{"low", "medium", "high", "critical"}

// valueFields are the fields a rule can group by, count distinct values of,
// or watch for new values.
var valueFields = []string{FieldSourceIP, FieldUserName, FieldUserID, FieldURLPath, FieldURLOrig,
	FieldCSPDocument, FieldCSPBlockedOrigin, FieldCSPDirective}

// Rule is one detection rule as written in a rules file. The YAML shape:
//
//	rules:
//	  - id: http-404-scan
//	    description: Many different paths answered 404 from one client.
//	    source: access            # access (default), csp or app
//	    match:                    # every condition given must hold
//	      status: [404]
//	      method: [GET, POST]
//	      path: [/login]          # exact url.path
//	      path_prefix: [/admin/]
//	      signature: [sql-injection]
//	      action: [login-failed]  # event.action, for app events
//	    group_by: source.ip       # source.ip (default), user.name or none
//	    window: 60s
//	    threshold: 50             # fire when this many ... in any window span
//	    distinct: url.path        # ... distinct values of this field (default: events)
//	    severity: high            # low, medium (default), high, critical
//	    cooldown: 72h             # quiet time per key after firing (default: the ban, else 1h)
//	    baseline:                 # relative to the key's usual rate (see Baseline)
//	      factor: 5
//	      learn: 1h
//	    novelty:                  # a value never seen for the key (see Novelty)
//	      field: vigil.csp.blocked_origin
//	      learn: 24h
//	    after:                    # count only events whose key fired that rule within
//	      rule: auth-failure-spike-user
//	      within: 15m
//	    actions:
//	      ban: 72h                # ban the key (an IP) for this long
//	      revoke_user: true       # revoke the tokens of the event's user.id
//	      lockdown: {mode: read-only, for: 30m}   # emergency lockdown (never in the default pack)
type Rule struct {
	ID          string    `yaml:"id"`
	Description string    `yaml:"description"`
	Source      string    `yaml:"source"`
	Match       Match     `yaml:"match"`
	GroupBy     string    `yaml:"group_by"`
	Window      Duration  `yaml:"window"`
	Threshold   int       `yaml:"threshold"`
	Distinct    string    `yaml:"distinct"`
	Severity    string    `yaml:"severity"`
	Cooldown    Duration  `yaml:"cooldown"`
	Baseline    *Baseline `yaml:"baseline"`
	Novelty     *Novelty  `yaml:"novelty"`
	After       *After    `yaml:"after"`
	Actions     Actions   `yaml:"actions"`
	Disabled    bool      `yaml:"disabled"`

	// File and Line locate the rule for error messages; set by the loader.
	File string `yaml:"-"`
	Line int    `yaml:"-"`
	// lines maps a field name to its line, for error messages.
	lines map[string]int
}

// Baseline makes a count rule relative to the key's usual rate: it fires
// when the events in one window reach factor times the key's usual count per
// window (an exponentially weighted average with time constant learn), and
// at least threshold. Windows are counted in twelve buckets, so a span is
// known to a twelfth of the window. The key's history survives its firing.
type Baseline struct {
	Factor float64  `yaml:"factor"`
	Learn  Duration `yaml:"learn"`
}

// Novelty fires when a key sees a value of Field it has not seen before,
// once the key has been known for Learn (values seen while learning are
// remembered silently). At most 1024 values are remembered per key. A
// restart relearns: no false alarms, a blind period instead.
type Novelty struct {
	Field string   `yaml:"field"`
	Learn Duration `yaml:"learn"`
}

// Match holds the conditions an event must meet; empty lists match anything.
type Match struct {
	Status     []int    `yaml:"status"`
	Method     []string `yaml:"method"`
	Path       []string `yaml:"path"`
	PathPrefix []string `yaml:"path_prefix"`
	Signature  []string `yaml:"signature"`
	Action     []string `yaml:"action"`
	// Name and NotName test an application event's vigil.app.name (the
	// SuspiciousOperation subclass, say): one of Name, none of NotName.
	Name    []string `yaml:"name"`
	NotName []string `yaml:"not_name"`
}

// Actions are what the responder does when the rule fires for a key that is
// not allow-listed. An alert is always published.
type Actions struct {
	// Ban bans the key, which must be an IP, for this long; 0 = no ban.
	Ban Duration `yaml:"ban"`
	// RevokeUser revokes every token of the user the firing event names
	// (its user.id), issued before the event.
	RevokeUser bool `yaml:"revoke_user"`
	// Lockdown puts the whole site in emergency lockdown. No rule of the
	// default pack does; it must be asked for explicitly.
	Lockdown *LockdownAction `yaml:"lockdown"`
}

// LockdownAction is an automatic emergency lockdown.
type LockdownAction struct {
	// Mode is "full" (every request refused) or "read-only" (unsafe methods
	// refused).
	Mode string `yaml:"mode"`
	// For is how long it lasts; 0 = until released by an operator.
	For Duration `yaml:"for"`
}

// After makes a rule count only events whose key fired another rule a
// little earlier: "a login that succeeds right after a burst of failures
// against the account". Both rules must group by the same field.
type After struct {
	Rule   string   `yaml:"rule"`
	Within Duration `yaml:"within"`
}

// Duration is a time.Duration read from YAML as a Go duration ("90s", "72h")
// or with a day suffix ("30d").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || fmt.Sprint(days) != n {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Duration(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (use e.g. 60s, 15m, 72h, 30d)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// EffectiveCooldown is how long a key stays quiet after the rule fired.
func (r *Rule) EffectiveCooldown() time.Duration {
	switch {
	case r.Cooldown > 0:
		return r.Cooldown.D()
	case r.Actions.Ban > 0:
		return r.Actions.Ban.D()
	default:
		return time.Hour
	}
}

// FieldError is one problem with one field of one rule.
type FieldError struct {
	File  string
	Line  int
	Rule  string
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a set of rule files, reported together.
type Errors []*FieldError

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// validate checks r without I/O and returns every problem it has.
func (r *Rule) validate() Errors {
	var errs Errors
	bad := func(field, format string, args ...any) {
		line := r.lines[field]
		if line == 0 {
			line = r.Line
		}
		errs = append(errs, &FieldError{File: r.File, Line: line, Rule: r.ID, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if r.ID == "" {
		bad("id", "must be set")
	} else if !validID(r.ID) {
		bad("id", "must be lower-case letters, digits and '-' (it is a NATS subject token and a metric label), got %q", r.ID)
	}
	switch r.Source {
	case "", "access", "csp", "app":
	default:
		bad("source", "must be access, csp or app, got %q", r.Source)
	}
	if r.GroupBy != FieldNone && !slices.Contains(valueFields, r.GroupBy) {
		bad("group_by", "must be %s or one of %s, got %q", FieldNone, strings.Join(valueFields, ", "), r.GroupBy)
	}
	if r.Distinct != "" && !slices.Contains(valueFields, r.Distinct) {
		bad("distinct", "must be one of %s, got %q", strings.Join(valueFields, ", "), r.Distinct)
	}
	if r.Baseline != nil {
		if r.Baseline.Factor <= 1 {
			bad("baseline.factor", "must be > 1, got %g", r.Baseline.Factor)
		}
		if r.Baseline.Learn < r.Window {
			bad("baseline.learn", "must be at least the window (%s), got %s", r.Window.D(), r.Baseline.Learn.D())
		}
		if r.Distinct != "" {
			bad("baseline", "cannot be combined with distinct")
		}
	}
	if r.Novelty != nil {
		if !slices.Contains(valueFields, r.Novelty.Field) {
			bad("novelty.field", "must be one of %s, got %q", strings.Join(valueFields, ", "), r.Novelty.Field)
		}
		if r.Novelty.Learn < 0 {
			bad("novelty.learn", "must be >= 0")
		}
		if r.Distinct != "" || r.Baseline != nil {
			bad("novelty", "cannot be combined with distinct or baseline")
		}
	}
	if r.Window <= 0 {
		bad("window", "must be > 0")
	} else if r.Window.D() > 24*time.Hour {
		bad("window", "must be at most 24h, got %s", r.Window.D())
	}
	if r.Threshold < 1 {
		bad("threshold", "must be >= 1, got %d", r.Threshold)
	} else if r.Threshold > maxThreshold {
		bad("threshold", "must be at most %d, got %d", maxThreshold, r.Threshold)
	}
	if r.Severity != "" && !slices.Contains(severities, r.Severity) {
		bad("severity", "must be one of %s, got %q", strings.Join(severities, ", "), r.Severity)
	}
	if r.Cooldown < 0 {
		bad("cooldown", "must be >= 0")
	}
	for _, f := range []struct {
		field string
		names []string
	}{{"match.name", r.Match.Name}, {"match.not_name", r.Match.NotName}} {
		if len(f.names) > 0 && r.Source != "app" {
			bad(f.field, "applies to application events only (source: app)")
		}
		if slices.Contains(f.names, "") {
			bad(f.field, "must not list an empty name")
		}
	}
	if r.Actions.Ban < 0 {
		bad("actions.ban", "must be >= 0")
	}
	if l := r.Actions.Lockdown; l != nil {
		if l.Mode != "full" && l.Mode != "read-only" {
			bad("actions.lockdown", "mode must be full or read-only, got %q", l.Mode)
		}
		if l.For < 0 {
			bad("actions.lockdown", "for must be >= 0")
		}
	}
	if a := r.After; a != nil {
		if a.Rule == "" || a.Rule == r.ID {
			bad("after.rule", "must name another rule")
		}
		if a.Within <= 0 {
			bad("after.within", "must be > 0")
		}
	}
	if r.Actions.RevokeUser && r.GroupBy != FieldUserID && r.GroupBy != FieldUserName {
		bad("actions.revoke_user", "needs group_by: %s or %s, got %q", FieldUserID, FieldUserName, r.GroupBy)
	}
	if r.Actions.Ban > 0 && r.GroupBy != "" && r.GroupBy != FieldSourceIP {
		bad("actions.ban", "needs group_by: %s (a ban applies to an IP), got %q", FieldSourceIP, r.GroupBy)
	}
	for _, s := range r.Match.Status {
		if s < 100 || s > 999 {
			bad("match.status", "%d is not an HTTP status", s)
		}
	}
	for _, m := range r.Match.Method {
		if m == "" || strings.ToUpper(m) != m {
			bad("match.method", "%q must be an upper-case HTTP method", m)
		}
	}
	for _, p := range append(slices.Clone(r.Match.Path), r.Match.PathPrefix...) {
		if !strings.HasPrefix(p, "/") {
			bad("match.path", "%q must start with '/'", p)
		}
	}
	for _, s := range r.Match.Signature {
		if sigClass(s) == 0 {
			bad("match.signature", "unknown signature %q (known: %s, %s, %s)", s, SigPathTraversal, SigSQLInjection, SigScriptInjection)
		}
	}
	return errs
}

// maxThreshold bounds per-key state: a window never holds more entries.
const maxThreshold = 10000

func validID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return len(s) <= 64
}
