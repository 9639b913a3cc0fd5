package detect

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"slices"
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
	// Now, when set (live mode), is the wall clock: events more than
	// MaxFuture ahead of it are dropped and counted, so one skewed clock or
	// a forged report age cannot move the engine's notion of time and
	// expire every window and cooldown. Replay leaves it nil.
	Now func() time.Time
	// MaxFuture is how far ahead of Now an event may be. Default 1m.
	MaxFuture time.Duration
	// BanQuiet is how long, at most, an address a rule banned stays quiet
	// in every rule grouping by source.ip (the rule's ban if shorter); 0:
	// not at all (a dry run, where nothing is banned). Live mode and
	// replay set DefaultBanQuiet, capped at max_ban.
	BanQuiet time.Duration
}

// DefaultBanQuiet bounds Options.BanQuiet: long enough for a banned
// scanner's echo (the 403s it is answered) to pass, short enough that an
// address whose ban did not take (an open circuit breaker, a Redis
// outage) is watched again within the hour.
const DefaultBanQuiet = time.Hour

// Stats are an Engine's counters, safe to read from any goroutine.
type Stats struct {
	Observations atomic.Int64 // observations processed
	Late         atomic.Int64 // dropped: older than the key's newest event minus Lateness
	Stale        atomic.Int64 // dropped: before NotBefore minus the window
	Future       atomic.Int64 // dropped: more than MaxFuture ahead of the clock
	Suppressed   atomic.Int64 // dropped: key in cooldown after firing
	Evicted      atomic.Int64 // windows (and cooldowns) evicted because MaxKeys was reached
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
	// future is Now()+MaxFuture as last read: an observation before it is
	// not too far ahead, so the clock is read only for those after it, and
	// for one that is due to start a sweep (at most once per second of
	// event time), so a clock stepped back is noticed before an event can
	// move the watermark more than a second.
	future int64

	table  map[tableKey]int32 // (rule, key) -> index in states
	states []keyState
	free   []int32
	// lists holds one LRU list per rule (all its windows have the same
	// length, so its tail is always the first to expire).
	lists      []lruList
	quiet      map[tableKey]int64
	fired      map[tableKey]int64 // when followed rules last fired, per key
	banned     map[Key]banSpan    // per address a rule banned: when (event time)
	warm       bool               // warming up: alerts are discarded, not counted
	watermark  int64              // newest event time seen
	swept      int64              // watermark at the last sweep
	quietSwept int64              // watermark at the last sweep of cooldowns
	stats      *Stats
}

// lruList links the windows of one rule: head is the most recently seen,
// tail the least; -1 when empty.
type lruList struct{ head, tail int32 }

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

// keyState is one window. Count rules keep their events' times, sorted;
// distinct rules keep one entry per value with the time it was last seen.
// Only entries of the last window plus the allowed lateness are kept, and
// since any window span holds fewer than threshold of them until the rule
// fires (and the window is dropped), a window never holds more than
// 2*threshold entries: state is bounded by the rule, not by the traffic.
type keyState struct {
	tk         tableKey
	prev, next int32
	newest     int64
	born       int64 // event time the window was created
	label      string
	entries    []entry // novelty rules: the values seen, with when
	samples    *[samplesKept]string
	base       *baseState // baseline rules only
}

// baseBuckets is how many buckets a baseline window is counted in.
const baseBuckets = 12

// baseState is a baseline rule's window: event counts in buckets of a
// twelfth of the window, and the key's usual count per window.
type baseState struct {
	buckets    [baseBuckets]uint32
	cur        int   // bucket of the newest events
	start      int64 // start of bucket cur
	usual      float64
	quietUntil int64
}

// maxNovelValues bounds the values a novelty rule remembers per key.
const maxNovelValues = 1024

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
		banned:   map[Key]banSpan{},
		fired:    map[tableKey]int64{},
		lists:    make([]lruList, rs.Len()),
		stats:    &Stats{Detections: make([]atomic.Int64, rs.Len())},
	}
	for i := range e.lists {
		e.lists[i] = lruList{head: -1, tail: -1}
	}
	if opts.MaxFuture <= 0 {
		opts.MaxFuture = time.Minute
		e.opts.MaxFuture = opts.MaxFuture
	}
	e.SetNotBefore(opts.NotBefore)
	return e
}

// SetNotBefore sets Options.NotBefore. Call it before the first Observe.
func (e *Engine) SetNotBefore(t time.Time) {
	e.notBefore = 0
	if !t.IsZero() {
		e.notBefore = t.UnixNano()
	}
}

// SetWarmUp switches warm-up on or off: while on, the engine rebuilds
// windows and cooldowns from events already processed once, and the alerts
// they cause are neither returned nor counted.
func (e *Engine) SetWarmUp(on bool) { e.warm = on }

// Reset forgets every window and cooldown, as a new engine would, and
// restores Options.NotBefore; the counters go on (Keys and Quiet drop to
// zero). The streaming detector resets before it rebuilds its windows for
// a stream that another process has been evaluating.
func (e *Engine) Reset() {
	clear(e.table)
	clear(e.quiet)
	clear(e.fired)
	clear(e.banned)
	e.states, e.free = nil, nil
	for i := range e.lists {
		e.lists[i] = lruList{head: -1, tail: -1}
	}
	e.warm = false
	e.watermark, e.swept, e.quietSwept, e.future = 0, 0, 0, 0
	e.SetNotBefore(e.opts.NotBefore)
	e.stats.Keys.Store(0)
	e.stats.Quiet.Store(0)
}

// Fired restores, from an alert stored before a restart or a take-over,
// what rule firing for key at the given event time left behind: the key's
// cooldown and, for a rule that another follows, when it fired. Warm-up
// rebuilds windows from the events of the longest window only, and a
// cooldown is longer (a ban's, 72h by default), so without this a key that
// fired before the warm-up's span would fire again. A cooldown already
// longer is kept. It reports false, changing nothing, for a rule the engine
// does not have or whose key is no longer the alert's kind (the rule's
// group_by changed).
func (e *Engine) Fired(rule, keyField, key string, at time.Time) bool {
	c := e.rs.byID(rule)
	if c == nil {
		return false
	}
	var k Key
	switch c.groupBy {
	case fieldNone:
		if keyField != "" {
			return false
		}
	case fieldSourceIP:
		addr, err := netip.ParseAddr(key)
		if keyField != FieldSourceIP || err != nil {
			return false
		}
		k = addr.Unmap().As16()
	default:
		if keyField != c.GroupBy {
			return false
		}
		k = e.rs.hashKey(key)
	}
	tk := tableKey{rule: c.index, key: k}
	t := at.UnixNano()
	if until := t + c.cooldown; until > e.quiet[tk] {
		e.quietUntil(tk, until)
	}
	e.markBanned(c, k, t)
	if c.followed && t > e.fired[tk] {
		e.fired[tk] = t
	}
	return true
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
	if e.opts.Now != nil && (o.Time > e.future || o.Time-e.swept >= int64(time.Second)) {
		e.future = e.opts.Now().Add(e.opts.MaxFuture).UnixNano()
		if o.Time > e.future {
			e.stats.Future.Add(1)
			return out
		}
	}
	if o.Time > e.watermark {
		e.watermark = o.Time
		if e.watermark-e.swept >= int64(time.Second) {
			e.sweep()
		}
	}
	if c.after >= 0 {
		at, ok := e.fired[tableKey{rule: c.after, key: o.Key}]
		if !ok || o.Time < at || o.Time-at > c.within {
			return out
		}
	}
	if c.groupBy == fieldSourceIP && len(e.banned) > 0 {
		// An address a rule banned: what it does now is the ban's own
		// echo (the 403s it is answered) or more of the same incident.
		if b, ok := e.banned[o.Key]; ok {
			if o.Time >= b.until {
				delete(e.banned, o.Key)
			} else if o.Time > b.from { // the banning event's time still counts everywhere
				e.stats.Suppressed.Add(1)
				return out
			}
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
	if ok && (c.kind == kindBaseline || c.kind == kindNovelty) {
		e.touch(idx)
		s := &e.states[idx]
		s.newest = max(s.newest, o.Time)
		if c.kind == kindBaseline {
			return e.observeBaseline(c, s, o, out)
		}
		return e.observeNovelty(c, s, o, out)
	}
	if ok {
		s := &e.states[idx]
		if o.Time < s.newest-e.lateness || o.Time <= s.newest-c.window {
			e.stats.Late.Add(1)
			return out
		}
		e.touch(idx)
	} else {
		idx = e.alloc(tk, o)
		switch c.kind {
		case kindBaseline:
			return e.observeBaseline(c, &e.states[idx], o, out)
		case kindNovelty:
			return e.observeNovelty(c, &e.states[idx], o, out)
		}
	}
	s := &e.states[idx]
	s.newest = max(s.newest, o.Time)
	horizon := s.newest - c.window - e.lateness // entries at or before it can no longer count
	var span [2]int64
	var count int
	if c.distinct == fieldNone {
		count, span = s.addCount(o.Time, c.window, horizon, c.Threshold)
	} else {
		count, span = s.addDistinct(o.Time, o.Value, c.window, horizon, c.Threshold)
	}
	if count < c.Threshold {
		if len(s.entries) >= c.Threshold-samplesKept {
			s.keepSample(o.Sample)
		}
		return out
	}
	if !e.warm {
		out = append(out, e.alert(c, s, o, count, span))
		e.stats.Detections[o.Rule].Add(1)
	}
	e.release(idx)
	if c.followed {
		e.fired[tk] = o.Time
		if len(e.fired) > e.opts.MaxKeys {
			for k, at := range e.fired {
				if at < e.watermark-int64(24*time.Hour) || len(e.fired) > e.opts.MaxKeys {
					delete(e.fired, k)
				}
			}
		}
	}
	e.quietUntil(tk, o.Time+c.cooldown)
	e.markBanned(c, o.Key, o.Time)
	return out
}

// quietUntil puts tk in cooldown until the event time until, keeping the
// cooldowns within MaxKeys.
func (e *Engine) quietUntil(tk tableKey, until int64) {
	e.quiet[tk] = until
	if len(e.quiet) > e.opts.MaxKeys {
		e.trimQuiet()
	}
	e.stats.Quiet.Store(int64(len(e.quiet)))
}

// observeBaseline counts o in a baseline rule's buckets and fires when the
// window's count is at least the threshold and factor times the usual.
func (e *Engine) observeBaseline(c *compiled, s *keyState, o *Observation, out []event.Alert) []event.Alert {
	if s.base == nil {
		s.base = &baseState{}
	}
	b := s.base
	bucketLen := max(c.window/baseBuckets, 1)
	if b.start == 0 {
		b.start = o.Time - o.Time%bucketLen
	}
	if n := (o.Time - b.start) / bucketLen; n > 0 {
		alpha := min(1, float64(bucketLen)/float64(c.learn))
		for i := int64(0); i < n; i++ {
			if i >= baseBuckets {
				// Every bucket is empty now: the rest only decays the usual.
				b.usual *= math.Pow(1-alpha, float64(n-i))
				break
			}
			b.usual += alpha * (float64(b.buckets[b.cur])*baseBuckets - b.usual)
			b.cur = (b.cur + 1) % baseBuckets
			b.buckets[b.cur] = 0
		}
		b.start += n * bucketLen
	}
	switch back := (b.start - o.Time + bucketLen - 1) / bucketLen; {
	case back <= 0:
		b.buckets[b.cur]++
	case back < baseBuckets && o.Time >= s.newest-e.lateness:
		b.buckets[(b.cur-int(back)+baseBuckets)%baseBuckets]++
	default:
		e.stats.Late.Add(1)
		return out
	}
	var count uint32
	for _, n := range b.buckets {
		count += n
	}
	if int(count) < c.Threshold || float64(count) < c.factor*b.usual || o.Time < b.quietUntil {
		return out
	}
	b.quietUntil = o.Time + c.cooldown
	if !e.warm {
		a := e.alert(c, s, o, int(count), [2]int64{max(b.start-c.window+bucketLen, s.born), o.Time})
		if b.usual > 0 {
			a.Evidence = append(a.Evidence, fmt.Sprintf("usual %.1f per %s", b.usual, time.Duration(c.window)))
		}
		out = append(out, a)
		e.stats.Detections[o.Rule].Add(1)
	}
	return out
}

// observeNovelty remembers o's value for its key and fires when it is new
// and the key is past its learning time.
func (e *Engine) observeNovelty(c *compiled, s *keyState, o *Observation, out []event.Alert) []event.Alert {
	for _, en := range s.entries {
		if en.v == o.Value {
			return out
		}
	}
	if len(s.entries) >= maxNovelValues {
		return out
	}
	s.entries = append(s.entries, entry{t: o.Time, v: o.Value})
	if o.Time-s.born < c.learn || e.warm {
		return out
	}
	a := e.alert(c, s, o, 1, [2]int64{o.Time, o.Time})
	a.Evidence = append([]string{"new " + c.Novelty.Field + ": " + truncate(o.ValueText, 512)}, a.Evidence...)
	e.stats.Detections[o.Rule].Add(1)
	return append(out, a)
}

// addCount inserts t keeping entries sorted, drops entries at or before
// horizon, and returns the largest number of events in one window span that
// contains t, with that span's first and last event time.
func (s *keyState) addCount(t, window, horizon int64, threshold int) (int, [2]int64) {
	i := len(s.entries)
	for i > 0 && s.entries[i-1].t > t {
		i--
	}
	s.entries = append(s.entries, entry{})
	copy(s.entries[i+1:], s.entries[i:])
	s.entries[i] = entry{t: t}
	s.trim(horizon)
	if len(s.entries) < threshold {
		return len(s.entries), [2]int64{}
	}
	return bestSpan(s.entries, t, window)
}

// addDistinct records value v seen at t (a value keeps the time it was last
// seen), drops entries at or before horizon, and returns the largest number
// of distinct values in one window span that contains t.
func (s *keyState) addDistinct(t int64, v uint64, window, horizon int64, threshold int) (int, [2]int64) {
	for i := range s.entries {
		if s.entries[i].v == v {
			if t <= s.entries[i].t {
				// Already counted at a later time: no span gains a value.
				return 0, [2]int64{}
			}
			s.entries[i].t = t
			return s.check(t, window, horizon, threshold)
		}
	}
	s.entries = append(s.entries, entry{t: t, v: v})
	return s.check(t, window, horizon, threshold)
}

// check trims a distinct window and, when it may hold threshold values,
// sorts it by time and finds the best span containing t.
func (s *keyState) check(t, window, horizon int64, threshold int) (int, [2]int64) {
	if len(s.entries) < threshold {
		return len(s.entries), [2]int64{}
	}
	n := 0
	for _, en := range s.entries {
		if en.t > horizon {
			s.entries[n] = en
			n++
		}
	}
	s.entries = s.entries[:n]
	if n < threshold {
		return n, [2]int64{}
	}
	slices.SortFunc(s.entries, func(a, b entry) int { return cmp.Compare(a.t, b.t) })
	return bestSpan(s.entries, t, window)
}

// trim drops sorted entries at or before horizon.
func (s *keyState) trim(horizon int64) {
	lo := 0
	for lo < len(s.entries) && s.entries[lo].t <= horizon {
		lo++
	}
	if lo > 0 {
		s.entries = s.entries[:copy(s.entries, s.entries[lo:])]
	}
}

// bestSpan returns the largest number of entries (sorted by time) that fall
// in one span shorter than window containing t, and that span's first and
// last time: every such span starts at an entry in (t-window, t].
func bestSpan(entries []entry, t, window int64) (int, [2]int64) {
	best, span := 0, [2]int64{}
	j := 0
	for i := range entries {
		if entries[i].t <= t-window {
			continue
		}
		if entries[i].t > t {
			break
		}
		if j < i {
			j = i
		}
		for j < len(entries) && entries[j].t-entries[i].t < window {
			j++
		}
		if n := j - i; n > best {
			best, span = n, [2]int64{entries[i].t, entries[j-1].t}
		}
	}
	return best, span
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
func (e *Engine) alert(c *compiled, s *keyState, o *Observation, count int, span [2]int64) event.Alert {
	a := event.Alert{
		Rule:        c.ID,
		Description: c.Description,
		Severity:    c.Severity,
		At:          time.Unix(0, o.Time).UTC(),
		FirstSeen:   time.Unix(0, span[0]).UTC(),
		Window:      event.Duration(c.window),
		Count:       count,
		Source:      c.Source,
	}
	switch c.groupBy {
	case fieldSourceIP:
		addr := keyAddr(s.tk.key)
		a.KeyField, a.Key = FieldSourceIP, addr.String()
		a.Allowlisted = e.opts.Allow.Contains(addr)
	case fieldNone:
		a.Key = "global"
	default:
		a.KeyField, a.Key = c.GroupBy, s.label
	}
	// Allow-listed alerts keep their actions: the responder records each
	// as skipped, so the audit trail shows what was not done and why.
	a.Actions = c.actions
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
	if o.UserID != "" {
		a.UserID = strings.Clone(o.UserID)
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

// alloc creates the window for tk at the front of its rule's LRU list,
// evicting the least recently seen window of any rule when the table is full.
func (e *Engine) alloc(tk tableKey, o *Observation) int32 {
	if len(e.table) >= e.opts.MaxKeys {
		if victim := e.oldest(); victim >= 0 {
			e.release(victim)
			e.stats.Evicted.Add(1)
		}
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
	*s = keyState{tk: tk, prev: -1, next: -1, newest: o.Time, born: o.Time, entries: s.entries[:0]}
	if o.Label != "" {
		s.label = strings.Clone(o.Label)
	}
	e.pushFront(idx)
	e.table[tk] = idx
	e.stats.Keys.Store(int64(len(e.table)))
	return idx
}

// oldest returns the least recently seen window across rules, -1 if none.
func (e *Engine) oldest() int32 {
	victim := int32(-1)
	for _, l := range e.lists {
		if l.tail >= 0 && (victim < 0 || e.states[l.tail].newest < e.states[victim].newest) {
			victim = l.tail
		}
	}
	return victim
}

// pushFront links idx at the head of its rule's list.
func (e *Engine) pushFront(idx int32) {
	s := &e.states[idx]
	l := &e.lists[s.tk.rule]
	s.prev, s.next = -1, l.head
	if l.head >= 0 {
		e.states[l.head].prev = idx
	}
	l.head = idx
	if l.tail < 0 {
		l.tail = idx
	}
}

// touch moves idx to the front of its rule's list.
func (e *Engine) touch(idx int32) {
	if e.lists[e.states[idx].tk.rule].head == idx {
		return
	}
	e.unlink(idx)
	e.pushFront(idx)
}

func (e *Engine) unlink(idx int32) {
	s := &e.states[idx]
	l := &e.lists[s.tk.rule]
	if s.prev >= 0 {
		e.states[s.prev].next = s.next
	} else {
		l.head = s.next
	}
	if s.next >= 0 {
		e.states[s.next].prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next = -1, -1
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
// plus the allowed lateness, oldest first in each rule's list, and
// cooldowns that are over.
func (e *Engine) sweep() {
	e.swept = e.watermark
	for r := range e.lists {
		c := e.rs.rules[r]
		for tail := e.lists[r].tail; tail >= 0; tail = e.lists[r].tail {
			if e.states[tail].newest > e.watermark-c.expiry-e.lateness {
				break
			}
			e.release(tail)
			e.stats.Expired.Add(1)
		}
	}
	if (len(e.quiet) > 0 || len(e.banned) > 0) && e.watermark-e.quietSwept >= int64(time.Minute) {
		e.quietSwept = e.watermark
		for tk, until := range e.quiet {
			if until <= e.watermark {
				delete(e.quiet, tk)
			}
		}
		e.stats.Quiet.Store(int64(len(e.quiet)))
		for k, b := range e.banned {
			if b.until <= e.watermark {
				delete(e.banned, k)
			}
		}
	}
}

// trimQuiet keeps the cooldowns within MaxKeys: expired ones go first, then
// the ones that end soonest, counted as evictions (such a key may fire again
// before its cooldown is over, which is the safe direction).
func (e *Engine) trimQuiet() {
	for tk, until := range e.quiet {
		if until <= e.watermark {
			delete(e.quiet, tk)
		}
	}
	if excess := len(e.quiet) - e.opts.MaxKeys*9/10; excess > 0 && len(e.quiet) > e.opts.MaxKeys {
		ends := make([]int64, 0, len(e.quiet))
		for _, until := range e.quiet {
			ends = append(ends, until)
		}
		slices.Sort(ends)
		cut := ends[excess-1]
		for tk, until := range e.quiet {
			if until <= cut && excess > 0 {
				delete(e.quiet, tk)
				excess--
				e.stats.Evicted.Add(1)
			}
		}
	}
}
