package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-soc/vigil/event"
)

// Options tune an Engine. The zero value is usable.
type Options struct {
	// Allow marks keys (IPs) that are never acted against; alerts for them
	// carry Allowlisted=true and no actions are taken.
	Allow *Allowlist
	// Lateness is how far behind the newest event of a key an event may be
	// and still count (events from several nginx workers interleave a little
	// out of order). Default 5s.
	Lateness time.Duration
	// MaxKeys caps the (rule, key) windows kept; past it the least recently
	// seen is evicted and counted. Default 1,000,000.
	MaxKeys int
	// NotBefore, when set, ignores events older than NotBefore minus the
	// rule's window: live mode sets it to the start time so a restart on an
	// old log never bans anyone for last week. Replay leaves it zero.
	NotBefore time.Time
}

// Stats are an Engine's counters, safe to read from any goroutine.
type Stats struct {
	Observations atomic.Int64 // observations processed
	Late         atomic.Int64 // dropped: older than the key's newest event minus Lateness
	Stale        atomic.Int64 // dropped: before NotBefore minus the window
	Suppressed   atomic.Int64 // dropped: key in cooldown after firing
	Evicted      atomic.Int64 // windows evicted because MaxKeys was reached
	Expired      atomic.Int64 // windows dropped because they went quiet
	Keys         atomic.Int64 // windows tracked now
	Quiet        atomic.Int64 // keys in cooldown now
	Detections   []atomic.Int64
}

// Engine keeps event-time sliding windows per (rule, key) and fires alerts.
// It is not safe for concurrent use: run one per partition of keys.
type Engine struct {
	rs        *RuleSet
	opts      Options
	lateness  int64
	notBefore int64

	table      map[tableKey]int32 // (rule, key) -> index in states
	states     []keyState
	free       []int32
	head       int32 // most recently seen; -1 when empty
	tail       int32 // least recently seen
	quiet      map[tableKey]int64
	watermark  int64 // newest event time seen
	swept      int64 // watermark at the last sweep
	quietSwept int64 // watermark at the last sweep of cooldowns
	stats      *Stats
}

type tableKey struct {
	rule int32
	key  Key
}

// entry is one counted event: its time and, for distinct rules, the hash of
// its value.
type entry struct {
	t int64
	v uint64
}

// samplesKept is how many evidence samples an alert carries.
const samplesKept = 3

// keyState is one window. Count rules keep entries sorted by time, at most
// threshold of them; distinct rules keep one entry per value with the time it
// was last seen, at most threshold-1 between events (reaching threshold
// fires), so state is bounded by the rule, not by the traffic.
type keyState struct {
	tk         tableKey
	prev, next int32
	newest     int64
	label      string
	entries    []entry
	samples    *[samplesKept]string
}

// NewEngine returns an Engine over rs.
func NewEngine(rs *RuleSet, opts Options) *Engine {
	if opts.Lateness <= 0 {
		opts.Lateness = 5 * time.Second
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 1_000_000
	}
	e := &Engine{
		rs:       rs,
		opts:     opts,
		lateness: int64(opts.Lateness),
		table:    map[tableKey]int32{},
		quiet:    map[tableKey]int64{},
		head:     -1,
		tail:     -1,
		stats:    &Stats{Detections: make([]atomic.Int64, rs.Len())},
	}
	if !opts.NotBefore.IsZero() {
		e.notBefore = opts.NotBefore.UnixNano()
	}
	return e
}

// Stats returns the engine's counters.
func (e *Engine) Stats() *Stats { return e.stats }

// RuleSet returns the rules the engine evaluates.
func (e *Engine) RuleSet() *RuleSet { return e.rs }

// Observe counts o and appends an alert to out if a rule fired. It fires on
// the observation that reaches the threshold, inside a burst, not when a
// window closes.
func (e *Engine) Observe(o *Observation, out []event.Alert) []event.Alert {
	c := e.rs.rules[o.Rule]
	e.stats.Observations.Add(1)
	if e.notBefore != 0 && o.Time < e.notBefore-c.window {
		e.stats.Stale.Add(1)
		return out
	}
	if o.Time > e.watermark {
		e.watermark = o.Time
		if e.watermark-e.swept >= int64(time.Second) {
			e.sweep()
		}
	}
	tk := tableKey{rule: o.Rule, key: o.Key}
	if len(e.quiet) > 0 {
		if until, ok := e.quiet[tk]; ok {
			if o.Time < until {
				e.stats.Suppressed.Add(1)
				return out
			}
			delete(e.quiet, tk)
			e.stats.Quiet.Store(int64(len(e.quiet)))
		}
	}
	idx, ok := e.table[tk]
	if !ok {
		idx = e.alloc(tk, o)
	} else {
		e.touch(idx)
	}
	s := &e.states[idx]
	if o.Time < s.newest-e.lateness || o.Time <= s.newest-c.window {
		e.stats.Late.Add(1)
		return out
	}
	s.newest = max(s.newest, o.Time)
	threshold := c.Threshold
	var fired bool
	if c.distinct == fieldNone {
		fired = s.addCount(o.Time, c.window, threshold)
	} else {
		fired = s.addDistinct(o.Time, o.Value, c.window, threshold)
	}
	if !fired {
		if len(s.entries) >= threshold-samplesKept {
			s.keepSample(o.Sample)
		}
		return out
	}
	out = append(out, e.alert(c, s, o))
	e.stats.Detections[o.Rule].Add(1)
	e.release(idx)
	e.quiet[tk] = o.Time + c.cooldown
	e.stats.Quiet.Store(int64(len(e.quiet)))
	return out
}

// addCount inserts t keeping entries sorted and within the window, and
// reports whether threshold events now fall in one window span.
func (s *keyState) addCount(t, window int64, threshold int) bool {
	i := len(s.entries)
	for i > 0 && s.entries[i-1].t > t {
		i--
	}
	s.entries = append(s.entries, entry{})
	copy(s.entries[i+1:], s.entries[i:])
	s.entries[i] = entry{t: t}
	lo := 0
	for lo < len(s.entries) && s.entries[lo].t <= s.newest-window {
		lo++
	}
	if len(s.entries)-lo > threshold {
		lo = len(s.entries) - threshold
	}
	if lo > 0 {
		s.entries = s.entries[:copy(s.entries, s.entries[lo:])]
	}
	return len(s.entries) >= threshold
}

// addDistinct records value v seen at t and reports whether threshold
// distinct values now fall in one window span.
func (s *keyState) addDistinct(t int64, v uint64, window int64, threshold int) bool {
	for i := range s.entries {
		if s.entries[i].v == v {
			s.entries[i].t = max(s.entries[i].t, t)
			// At most threshold-1 entries are kept, so a repeat value
			// cannot make threshold distinct ones.
			return false
		}
	}
	if len(s.entries) >= threshold-1 {
		// This value may complete the set: drop values last seen outside
		// the window ending at the newest event first.
		n := 0
		for _, en := range s.entries {
			if en.t > s.newest-window {
				s.entries[n] = en
				n++
			}
		}
		s.entries = s.entries[:n]
	}
	s.entries = append(s.entries, entry{t: t, v: v})
	return len(s.entries) >= threshold
}

func (s *keyState) keepSample(sample string) {
	if sample == "" {
		return
	}
	if s.samples == nil {
		s.samples = new([samplesKept]string)
	}
	copy(s.samples[:], s.samples[1:])
	s.samples[samplesKept-1] = strings.Clone(truncate(sample, 512))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// alert builds the alert for s firing on o.
func (e *Engine) alert(c *compiled, s *keyState, o *Observation) event.Alert {
	first := s.newest
	for _, en := range s.entries {
		first = min(first, en.t)
	}
	a := event.Alert{
		Rule:        c.ID,
		Description: c.Description,
		Severity:    c.Severity,
		At:          time.Unix(0, o.Time).UTC(),
		FirstSeen:   time.Unix(0, first).UTC(),
		Window:      event.Duration(c.window),
		Count:       len(s.entries),
		Source:      c.Source,
	}
	switch c.groupBy {
	case fieldSourceIP:
		addr := keyAddr(s.tk.key)
		a.KeyField, a.Key = FieldSourceIP, addr.String()
		a.Allowlisted = e.opts.Allow.Contains(addr)
	case fieldUserName:
		a.KeyField, a.Key = FieldUserName, s.label
	default:
		a.Key = "global"
	}
	if !a.Allowlisted {
		a.Actions = c.actions
	}
	if s.samples != nil {
		for _, x := range s.samples {
			if x != "" && x != o.Sample {
				a.Evidence = append(a.Evidence, x)
			}
		}
	}
	if o.Sample != "" {
		a.Evidence = append(a.Evidence, strings.Clone(truncate(o.Sample, 512)))
	}
	a.ID = AlertID(a.Rule, a.Key, o.Time)
	return a
}

// AlertID derives the deterministic alert id from the rule, the key and the
// event time that made the rule fire, so the same input always gives the
// same id and the bus drops re-sent duplicates.
func AlertID(rule, key string, t int64) string {
	h := sha256.New()
	h.Write([]byte(rule))
	h.Write([]byte{0})
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, t, 10))
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// alloc creates the window for tk at the front of the LRU list, evicting the
// least recently seen window when the table is full.
func (e *Engine) alloc(tk tableKey, o *Observation) int32 {
	if len(e.table) >= e.opts.MaxKeys && e.tail >= 0 {
		e.release(e.tail)
		e.stats.Evicted.Add(1)
	}
	var idx int32
	if n := len(e.free); n > 0 {
		idx = e.free[n-1]
		e.free = e.free[:n-1]
	} else {
		e.states = append(e.states, keyState{})
		idx = int32(len(e.states) - 1)
	}
	s := &e.states[idx]
	*s = keyState{tk: tk, prev: -1, next: e.head, newest: o.Time, entries: s.entries[:0]}
	if o.Label != "" {
		s.label = strings.Clone(o.Label)
	}
	if e.head >= 0 {
		e.states[e.head].prev = idx
	}
	e.head = idx
	if e.tail < 0 {
		e.tail = idx
	}
	e.table[tk] = idx
	e.stats.Keys.Store(int64(len(e.table)))
	return idx
}

// touch moves idx to the front of the LRU list.
func (e *Engine) touch(idx int32) {
	if e.head == idx {
		return
	}
	e.unlink(idx)
	s := &e.states[idx]
	s.prev, s.next = -1, e.head
	e.states[e.head].prev = idx
	e.head = idx
	if e.tail < 0 {
		e.tail = idx
	}
}

func (e *Engine) unlink(idx int32) {
	s := &e.states[idx]
	if s.prev >= 0 {
		e.states[s.prev].next = s.next
	} else {
		e.head = s.next
	}
	if s.next >= 0 {
		e.states[s.next].prev = s.prev
	} else {
		e.tail = s.prev
	}
}

// release drops the window idx and recycles its slot.
func (e *Engine) release(idx int32) {
	e.unlink(idx)
	s := &e.states[idx]
	delete(e.table, s.tk)
	entries := s.entries
	if cap(entries) > 64 {
		entries = nil // do not let one burst pin memory in a recycled slot
	}
	*s = keyState{entries: entries[:0]}
	e.free = append(e.free, idx)
	e.stats.Keys.Store(int64(len(e.table)))
}

// sweep drops windows that have seen nothing for longer than their window
// (plus the allowed lateness), oldest first, and cooldowns that are over.
func (e *Engine) sweep() {
	e.swept = e.watermark
	for e.tail >= 0 {
		s := &e.states[e.tail]
		c := e.rs.rules[s.tk.rule]
		if s.newest > e.watermark-c.window-e.lateness {
			break
		}
		e.release(e.tail)
		e.stats.Expired.Add(1)
	}
	if len(e.quiet) > 0 && (e.watermark-e.quietSwept >= int64(time.Minute) || len(e.quiet) > e.opts.MaxKeys) {
		e.quietSwept = e.watermark
		for tk, until := range e.quiet {
			if until <= e.watermark {
				delete(e.quiet, tk)
			}
		}
		e.stats.Quiet.Store(int64(len(e.quiet)))
	}
}
