package loggen

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Rule ids, as the detector names them.
const (
	ruleScan      = "http-404-scan"
	ruleBrute     = "auth-bruteforce"
	ruleTraversal = "path-traversal"
	ruleSQLi      = "sql-injection"
	ruleXSS       = "script-injection"
)

// Rule parameters.
const (
	window         = 60 * second // both count rules: newest - oldest < 60 s
	scanThreshold  = 50          // distinct 404 paths
	bruteThreshold = 20          // failed login POSTs
)

// signatures are the payload rules' patterns, matched against the
// lower-cased target as sent, once decoded and twice decoded. A quote
// later followed by "--" is a SQL injection too (see matchSignatures).
// "<img" counts only with an event handler, which onerror= and onload=
// cover; the generator never sends one without.
var signatures = []struct {
	rule string
	pat  string
}{
	{ruleTraversal, "../"},
	{ruleTraversal, `..\`},
	{ruleTraversal, "/etc/passwd"},
	{ruleSQLi, "' or '1'='1"},
	{ruleSQLi, "union select"},
	{ruleSQLi, "union all select"},
	{ruleSQLi, "sleep("},
	{ruleSQLi, "benchmark("},
	{ruleSQLi, "information_schema"},
	{ruleXSS, "<script"},
	{ruleXSS, "javascript:"},
	{ruleXSS, "onerror="},
	{ruleXSS, "onload="},
	{ruleXSS, "<svg"},
}

// payloadRuleIDs are the payload rules, in the bit order of a rule set.
var payloadRuleIDs = [...]string{ruleTraversal, ruleSQLi, ruleXSS}

// sigIndex lists, for each byte, the signatures starting with it (as a
// rule bit and a pattern), so one pass over a target checks them all.
var sigIndex = func() (idx [256][]struct {
	bit uint8
	pat string
}) {
	for _, s := range signatures {
		bit := uint8(1) << slices.Index(payloadRuleIDs[:], s.rule)
		idx[s.pat[0]] = append(idx[s.pat[0]], struct {
			bit uint8
			pat string
		}{bit, s.pat})
	}
	return idx
}()

// oracle is the reference implementation of the rules: it keeps every
// relevant request per client and evaluates the windows at the end, the
// slow and obvious way. It sees requests in the order they are written,
// which is not quite event-time order; truth sorts.
type oracle struct {
	misses map[string][]miss  // key -> 404s
	fails  map[string][]int64 // key -> event seconds of failed login POSTs
	hits   map[[2]string]bool // (rule, key) of payload rules
	lower  []byte
	dec    [2][]byte
}

// miss is one 404: its event second and path.
type miss struct {
	sec  int64
	path string
}

// newOracle returns an oracle that has seen nothing.
func newOracle() oracle {
	return oracle{
		misses: make(map[string][]miss),
		fails:  make(map[string][]int64),
		hits:   make(map[[2]string]bool),
	}
}

// observe records one request by client key at event second sec.
func (o *oracle) observe(key string, sec int64, method, target string, status int) {
	path, _, _ := strings.Cut(target, "?")
	if status == 404 {
		o.misses[key] = append(o.misses[key], miss{sec, path})
	}
	if method == "POST" && (status == 401 || status == 403) && slices.Contains(loginPaths, path) {
		o.fails[key] = append(o.fails[key], sec)
	}
	if rules := o.payloadRules(target); rules != 0 {
		for i, rule := range payloadRuleIDs {
			if rules&(1<<i) != 0 {
				o.hits[[2]string{rule, key}] = true
			}
		}
	}
}

// payloadRules returns the set of payload rules (bits in payloadRuleIDs
// order) target matches: any signature in the target as sent, decoded once
// or decoded twice ('+' in the query is a space; invalid escapes stay as
// they are), compared in lower case.
func (o *oracle) payloadRules(target string) uint8 {
	o.lower = appendLower(o.lower[:0], target)
	rules := matchSignatures(o.lower)
	if strings.IndexByte(target, '%') >= 0 || strings.IndexByte(target, '+') >= 0 {
		o.dec[0] = decode(o.dec[0][:0], target)
		o.dec[1] = decode(o.dec[1][:0], o.dec[0])
		for _, form := range o.dec {
			o.lower = appendLower(o.lower[:0], form)
			rules |= matchSignatures(o.lower)
		}
	}
	return rules
}

// matchSignatures returns the set of rules whose signatures s contains.
func matchSignatures(s []byte) uint8 {
	var rules uint8
	for i, c := range s {
		if len(sigIndex[c]) == 0 {
			continue
		}
		for _, sig := range sigIndex[c] {
			if bytes.HasPrefix(s[i:], []byte(sig.pat)) {
				rules |= sig.bit
			}
		}
	}
	if q := bytes.IndexByte(s, '\''); q >= 0 && bytes.Contains(s[q:], []byte("--")) {
		rules |= 1 << slices.Index(payloadRuleIDs[:], ruleSQLi)
	}
	return rules
}

// appendLower appends s to dst with ASCII letters lower-cased.
func appendLower[S ~string | ~[]byte](dst []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// decode appends s percent-decoded to dst, with '+' after the first '?'
// decoded as a space.
func decode[S ~string | ~[]byte](dst []byte, s S) []byte {
	query := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '?':
			query = true
		case c == '+' && query:
			c = ' '
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		}
		dst = append(dst, c)
	}
	return dst
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// truth evaluates the rules with the given window (ns), sorted by rule then
// key. Actor is left empty.
func (o *oracle) truth(window int64) []Truth {
	w := window / second
	var out []Truth
	add := func(rule, key string) {
		out = append(out, Truth{Rule: rule, Key: key, Allowlisted: allowlisted(key)})
	}
	for key, ms := range o.misses {
		if distinctInWindow(ms, w) >= scanThreshold {
			add(ruleScan, key)
		}
	}
	for key, fs := range o.fails {
		if countInWindow(fs, w) >= bruteThreshold {
			add(ruleBrute, key)
		}
	}
	for rk := range o.hits {
		add(rk[0], rk[1])
	}
	slices.SortFunc(out, func(a, b Truth) int {
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

// distinctInWindow returns the most distinct paths among misses whose
// seconds are less than w apart.
func distinctInWindow(ms []miss, w int64) int {
	ms = slices.Clone(ms)
	slices.SortStableFunc(ms, func(a, b miss) int { return cmp.Compare(a.sec, b.sec) })
	best := 0
	count := make(map[string]int)
	lo := 0
	for _, m := range ms {
		count[m.path]++
		for m.sec-ms[lo].sec >= w {
			if count[ms[lo].path]--; count[ms[lo].path] == 0 {
				delete(count, ms[lo].path)
			}
			lo++
		}
		best = max(best, len(count))
	}
	return best
}

// countInWindow returns the most of secs less than w apart.
func countInWindow(secs []int64, w int64) int {
	secs = slices.Clone(secs)
	slices.Sort(secs)
	best, lo := 0, 0
	for hi, s := range secs {
		for s-secs[lo] >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// WriteTruth writes t to w as JSON lines, sorted by rule then key.
func WriteTruth(w io.Writer, t []Truth) error {
	t = slices.Clone(t)
	slices.SortFunc(t, func(a, b Truth) int {
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	enc := json.NewEncoder(w)
	for _, x := range t {
		if err := enc.Encode(x); err != nil {
			return fmt.Errorf("writing truth: %w", err)
		}
	}
	return nil
}
