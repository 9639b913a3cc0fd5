package detect

import (
	"hash/maphash"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/vigil-soc/vigil/event"
)

// Key is what a rule counts for: an IP address in its 16-byte form, a hash of
// a user name, or the zero Key for a global rule.
type Key [16]byte

// Observation is one event as one rule sees it: the key it counts for, when,
// and a hash of the value counted. It is what flows from a Matcher to an
// Engine, small and flat so matching can run on other goroutines.
type Observation struct {
	// Rule is the index of the rule in the RuleSet.
	Rule int32
	// Key is the group-by key.
	Key Key
	// Time is the event time in Unix nanoseconds.
	Time int64
	// Value is a hash of the field a distinct rule counts; 0 otherwise.
	Value uint64
	// Label is the key as text when it is not an IP (a user name). Like
	// Sample it may point into a buffer the caller reuses: the Engine copies
	// it if it keeps it.
	Label string
	// Sample is evidence for a human: the request target or the raw line.
	Sample string
	// ValueText is the value a novelty rule saw (a view, like Label).
	ValueText string
	// UserID is the event's user.id, for rules that revoke (a view).
	UserID string
}

// groupBy and distinct fields as small enums for the hot path.
const (
	fieldNone uint8 = iota
	fieldSourceIP
	fieldUserName
	fieldUserID
	fieldURLPath
	fieldURLOrig
	fieldCSPDocument
	fieldCSPBlockedOrigin
	fieldCSPDirective
)

func fieldCode(name string) uint8 {
	switch name {
	case FieldSourceIP:
		return fieldSourceIP
	case FieldUserName:
		return fieldUserName
	case FieldUserID:
		return fieldUserID
	case FieldURLPath:
		return fieldURLPath
	case FieldURLOrig:
		return fieldURLOrig
	case FieldCSPDocument:
		return fieldCSPDocument
	case FieldCSPBlockedOrigin:
		return fieldCSPBlockedOrigin
	case FieldCSPDirective:
		return fieldCSPDirective
	}
	return fieldNone
}

// fieldText returns the text of a field other than source.ip; ok is false
// when the event has none.
func fieldText(ev *event.Event, code uint8) (string, bool) {
	var s string
	switch code {
	case fieldUserName:
		s = ev.UserName
	case fieldUserID:
		s = ev.UserID
	case fieldURLPath:
		s = ev.Path
	case fieldURLOrig:
		s = ev.Target
	case fieldCSPDocument, fieldCSPBlockedOrigin, fieldCSPDirective:
		if ev.CSP == nil {
			return "", false
		}
		switch code {
		case fieldCSPDocument:
			s = ev.CSP.DocumentURI
			if i := strings.IndexAny(s, "?#"); i >= 0 {
				s = s[:i]
			}
		case fieldCSPBlockedOrigin:
			s = ev.CSP.BlockedOrigin
		default:
			s = ev.CSP.EffectiveDirective
		}
	}
	return s, s != ""
}

// Rule kinds, by what they count.
const (
	kindCount    uint8 = iota // events in a window
	kindDistinct              // distinct values in a window
	kindBaseline              // events in a window, against the key's usual rate
	kindNovelty               // values never seen for the key
)

// compiled is a Rule prepared for matching and counting.
type compiled struct {
	*Rule
	index     int32
	statusAny bool
	status    [16]uint64 // bit set of status codes 0..1023
	paths     map[string]struct{}
	sig       uint8
	groupBy   uint8
	distinct  uint8 // field counted distinct, or watched for new values (novelty)
	kind      uint8 // kindCount, kindDistinct, kindBaseline, kindNovelty
	factor    float64
	learn     int64 // nanoseconds
	expiry    int64 // how long a quiet key's state is kept, nanoseconds
	after     int32 // index of the rule that must have fired for the key first, -1 none
	within    int64 // how recently, nanoseconds
	followed  bool  // another rule's after names this one: remember when it fires
	window    int64 // nanoseconds
	cooldown  int64 // nanoseconds
	actions   []event.ActionSpec
}

// RuleSet is a compiled, immutable set of rules, shared by Matchers and
// Engines.
type RuleSet struct {
	rules    []*compiled
	bySource map[string][]*compiled
	seed     maphash.Seed
	needSig  bool
}

// Compile prepares validated rules for matching. Rules come from LoadFS or
// Parse, which validate them.
func Compile(rules []*Rule) *RuleSet {
	rs := &RuleSet{bySource: map[string][]*compiled{}, seed: maphash.MakeSeed()}
	for i, r := range rules {
		c := &compiled{
			Rule:      r,
			index:     int32(i),
			statusAny: len(r.Match.Status) == 0,
			groupBy:   fieldCode(r.GroupBy),
			distinct:  fieldCode(r.Distinct),
			window:    int64(r.Window),
			cooldown:  int64(r.EffectiveCooldown()),
			kind:      kindCount,
		}
		c.expiry = c.window
		switch {
		case r.Distinct != "":
			c.kind = kindDistinct
		case r.Baseline != nil:
			c.kind, c.factor, c.learn = kindBaseline, r.Baseline.Factor, int64(r.Baseline.Learn)
			c.expiry = c.learn
		case r.Novelty != nil:
			c.kind, c.distinct, c.learn = kindNovelty, fieldCode(r.Novelty.Field), int64(r.Novelty.Learn)
			c.expiry = c.learn + int64(24*time.Hour)
		}
		for _, s := range r.Match.Status {
			c.status[s/64] |= 1 << (s % 64)
		}
		if len(r.Match.Path) > 0 {
			c.paths = make(map[string]struct{}, len(r.Match.Path))
			for _, p := range r.Match.Path {
				c.paths[p] = struct{}{}
			}
		}
		for _, s := range r.Match.Signature {
			c.sig |= sigClass(s)
		}
		if r.Actions.Ban > 0 {
			c.actions = append(c.actions, event.ActionSpec{Kind: event.ActionBan, Duration: event.Duration(r.Actions.Ban)})
		}
		if r.Actions.RevokeUser {
			c.actions = append(c.actions, event.ActionSpec{Kind: event.ActionRevokeUser})
		}
		if l := r.Actions.Lockdown; l != nil {
			c.actions = append(c.actions, event.ActionSpec{Kind: event.ActionLockdown, Mode: l.Mode, Duration: event.Duration(l.For)})
		}
		c.after = -1
		rs.needSig = rs.needSig || c.sig != 0
		rs.rules = append(rs.rules, c)
		rs.bySource[r.Source] = append(rs.bySource[r.Source], c)
	}
	for _, c := range rs.rules {
		if c.After == nil {
			continue
		}
		for _, p := range rs.rules {
			if p.ID == c.After.Rule {
				c.after, c.within, p.followed = p.index, int64(c.After.Within), true
			}
		}
	}
	return rs
}

// Rules returns the rules in index order.
func (rs *RuleSet) Rules() []*Rule {
	out := make([]*Rule, len(rs.rules))
	for i, c := range rs.rules {
		out[i] = c.Rule
	}
	return out
}

// Len returns the number of rules.
func (rs *RuleSet) Len() int { return len(rs.rules) }

// MaxWindow returns the longest rule window.
func (rs *RuleSet) MaxWindow() int64 {
	var m int64
	for _, c := range rs.rules {
		m = max(m, c.window)
	}
	return m
}

// MaxCooldown returns the longest rule cooldown.
func (rs *RuleSet) MaxCooldown() time.Duration {
	var m int64
	for _, c := range rs.rules {
		m = max(m, c.cooldown)
	}
	return time.Duration(m)
}

// byID returns the rule with id, nil if none.
func (rs *RuleSet) byID(id string) *compiled {
	for _, c := range rs.rules {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// Matcher turns events into Observations. Each goroutine needs its own: it
// owns scratch buffers.
type Matcher struct {
	rs   *RuleSet
	sig  sigScanner
	path []byte
}

// NewMatcher returns a Matcher for rs.
func (rs *RuleSet) NewMatcher() *Matcher { return &Matcher{rs: rs} }

// Sample returns the evidence an event decoded from the bus gives the
// alerts it feeds: for an application event, what happened, to whom and
// from where ("login-failed user=alice from 198.51.100.7 /api/token/"),
// so that an alert over many of them names the clients; otherwise its
// request target or, for an event without one (a scanner's probe), its
// message.
func Sample(ev *event.Event) string {
	if ev.Source == event.SourceApp {
		var b strings.Builder
		b.WriteString(ev.Action)
		if ev.Name != "" {
			b.WriteString(" " + ev.Name)
		}
		if ev.UserName != "" {
			b.WriteString(" user=" + ev.UserName)
		} else if ev.UserID != "" {
			b.WriteString(" user.id=" + ev.UserID)
		}
		if ev.SourceIP.IsValid() {
			b.WriteString(" from " + ev.SourceIP.String())
		}
		if ev.Target != "" {
			b.WriteString(" " + ev.Target)
		} else if ev.Path != "" {
			b.WriteString(" " + ev.Path)
		}
		return b.String()
	}
	if ev.Target != "" {
		return ev.Target
	}
	return ev.Message
}

// Match appends to out one Observation per rule ev matches and returns the
// extended slice. sample is the evidence to attach (the raw log line or the
// request target); it may point into a buffer the caller reuses.
func (m *Matcher) Match(ev *event.Event, sample string, out []Observation) []Observation {
	rules := m.rs.bySource[ev.Source]
	if len(rules) == 0 {
		return out
	}
	sigs, sigDone := uint8(0), false
	path, pathDone := "", false
	t := ev.Time.UnixNano()
	for _, c := range rules {
		if !c.statusAny && (ev.Status < 0 || ev.Status >= 1024 || c.status[ev.Status/64]&(1<<(ev.Status%64)) == 0) {
			continue
		}
		if len(c.Match.Method) > 0 && !slices.Contains(c.Match.Method, ev.Method) {
			continue
		}
		if c.paths != nil || len(c.Match.PathPrefix) > 0 {
			if !pathDone {
				path, pathDone = m.normalPath(ev.Path), true
			}
			if c.paths != nil {
				if _, ok := c.paths[path]; !ok {
					continue
				}
			}
			if len(c.Match.PathPrefix) > 0 && !hasAnyPrefix(path, c.Match.PathPrefix) {
				continue
			}
		}
		if len(c.Match.Action) > 0 && !slices.Contains(c.Match.Action, ev.Action) {
			continue
		}
		if len(c.Match.Name) > 0 && !slices.Contains(c.Match.Name, ev.Name) || slices.Contains(c.Match.NotName, ev.Name) {
			continue
		}
		if c.sig != 0 {
			if !sigDone {
				sigs, sigDone = m.sig.classify(ev.Target), true
			}
			if sigs&c.sig == 0 {
				continue
			}
		}
		o := Observation{Rule: c.index, Time: t, Sample: sample}
		if c.Actions.RevokeUser {
			o.UserID = ev.UserID
		}
		switch c.groupBy {
		case fieldNone:
		case fieldSourceIP:
			if !ev.SourceIP.IsValid() {
				continue
			}
			o.Key = ev.SourceIP.As16()
		default:
			text, ok := fieldText(ev, c.groupBy)
			if !ok {
				continue
			}
			o.Key = m.rs.hashKey(text)
			o.Label = text
		}
		switch c.distinct {
		case fieldNone:
		case fieldSourceIP:
			if !ev.SourceIP.IsValid() {
				continue
			}
			a := ev.SourceIP.As16()
			o.Value = maphash.Bytes(m.rs.seed, a[:])
			if c.kind == kindNovelty {
				o.ValueText = ev.SourceIP.String()
			}
		default:
			text, ok := fieldText(ev, c.distinct)
			if !ok {
				continue
			}
			o.Value = maphash.String(m.rs.seed, text)
			if c.kind == kindNovelty {
				o.ValueText = text
			}
		}
		out = append(out, o)
	}
	return out
}

// normalPath returns the path as the application sees it, for path
// conditions: percent-decoded (Django's PATH_INFO is decoded, so
// /api/%74oken/ reaches the token view) with runs of '/' collapsed. The
// common path without '%' or "//" is returned as it is.
func (m *Matcher) normalPath(p string) string {
	if !strings.Contains(p, "%") && !strings.Contains(p, "//") {
		return p
	}
	m.path = m.path[:0]
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) {
			if hi, ok := unhex(p[i+1]); ok {
				if lo, ok := unhex(p[i+2]); ok {
					c = hi<<4 | lo
					i += 2
				}
			}
		}
		if c == '/' && len(m.path) > 0 && m.path[len(m.path)-1] == '/' {
			continue
		}
		m.path = append(m.path, c)
	}
	return unsafe.String(unsafe.SliceData(m.path), len(m.path))
}

// hashKey maps a text key to a Key; two independent 64-bit hashes make a
// collision between two user names practically impossible.
func (rs *RuleSet) hashKey(s string) Key {
	var k Key
	h1 := maphash.String(rs.seed, s)
	var h maphash.Hash
	h.SetSeed(rs.seed)
	h.WriteByte(0xff)
	h.WriteString(s)
	h2 := h.Sum64()
	for i := 0; i < 8; i++ {
		k[i] = byte(h1 >> (8 * i))
		k[8+i] = byte(h2 >> (8 * i))
	}
	return k
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}

// keyAddr returns k as an IP address.
func keyAddr(k Key) netip.Addr { return netip.AddrFrom16(k).Unmap() }
