package respond

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Defaults of BreakerConfig.
const (
	DefaultBreakerPerRule = 50
	DefaultBreakerOverall = 200
	DefaultBreakerWindow  = 10 * time.Minute
)

// BreakerScopeOverall is the scope of the breaker that counts every rule's
// automatic bans; a rule's own breaker has the scope "rule:<id>".
const BreakerScopeOverall = "overall"

// BreakerConfig configures the circuit breaker that stops automatic bans
// and token revocations when a rule makes an abnormal number of them in a
// short time: a broken rule must not ban the whole internet, nor log every
// user out.
//
// The breaker counts automatic actions that changed Redis (not repeats,
// dry runs or allow-listed keys) in a sliding window of wall-clock time,
// per rule and overall. When an action would take a count past its limit
// the breaker of that scope opens: from then on the automatic bans and
// revocations of that rule (or, for the overall breaker, of every rule)
// are not applied and are audited as "breaker-open", until an operator
// closes it with Responder.ResetBreaker. Counts live in memory; an open
// breaker is also recorded in Redis, so a restart keeps it open
// (Responder.RestoreBreakers). Manual actions ignore the breaker.
type BreakerConfig struct {
	// PerRule is how many automatic bans one rule may apply within Window.
	// Default 50.
	PerRule int
	// Overall is how many automatic bans all rules together may apply
	// within Window. Default 200.
	Overall int
	// Window is the length of the sliding window. Default 10m.
	Window time.Duration
}

// withDefaults returns c with zero fields set to their defaults.
func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.PerRule == 0 {
		c.PerRule = DefaultBreakerPerRule
	}
	if c.Overall == 0 {
		c.Overall = DefaultBreakerOverall
	}
	if c.Window == 0 {
		c.Window = DefaultBreakerWindow
	}
	return c
}

// BreakerState is the state of one breaker scope, as the admin API shows it.
type BreakerState struct {
	// Open is true while automatic bans of the scope are stopped.
	Open bool `json:"open"`
	// Count is how many automatic bans of the scope were applied within
	// the window, as of now; for an open breaker, as of when it opened.
	Count int `json:"count"`
	// Limit is the scope's limit within the window.
	Limit int `json:"limit"`
	// Since is when the breaker opened; zero while it is closed.
	Since time.Time `json:"since,omitzero"`
	// Blocked is how many automatic bans the breaker stopped since it
	// opened.
	Blocked int `json:"blocked"`
}

// breaker is the in-memory state of the circuit breaker.
type breaker struct {
	cfg     BreakerConfig // with defaults applied
	now     func() time.Time
	onTrip  func(ctx context.Context, scope string, since time.Time, count int)
	metrics *Metrics
	logger  *slog.Logger

	mu     sync.Mutex
	scopes map[string]*breakerScope // by scope name; guarded by mu
}

// breakerScope is one scope's window and state.
type breakerScope struct {
	times   []time.Time // applied bans within the window, oldest first
	pending int         // bans reserved and not yet done
	open    bool
	since   time.Time
	count   int // the count when it opened
	blocked int
}

func newBreaker(cfg BreakerConfig, now func() time.Time, onTrip func(context.Context, string, time.Time, int), m *Metrics, logger *slog.Logger) *breaker {
	return &breaker{cfg: cfg, now: now, onTrip: onTrip, metrics: m, logger: logger, scopes: map[string]*breakerScope{}}
}

// ruleScope returns the scope name of a rule's breaker.
func ruleScope(rule string) string { return "rule:" + rule }

// reserve asks to apply one automatic ban of rule. If ok, the caller must
// call done once the ban is applied or not. If not, a breaker is open (or
// has just opened: then onTrip has run, with ctx) and open names its scope.
func (b *breaker) reserve(ctx context.Context, rule string) (open string, ok bool) {
	b.mu.Lock()
	now := b.now()
	rname, oname := ruleScope(rule), BreakerScopeOverall
	r, o := b.scopeLocked(rname), b.scopeLocked(oname)
	switch {
	case r.open:
		r.blocked++
		b.mu.Unlock()
		return rname, false
	case o.open:
		o.blocked++
		b.mu.Unlock()
		return oname, false
	}
	r.pruneLocked(now, b.cfg.Window)
	o.pruneLocked(now, b.cfg.Window)
	var name string
	var trip *breakerScope
	switch {
	case len(r.times)+r.pending >= b.cfg.PerRule:
		name, trip = rname, r
	case len(o.times)+o.pending >= b.cfg.Overall:
		name, trip = oname, o
	default:
		r.pending++
		o.pending++
		b.mu.Unlock()
		return "", true
	}
	trip.open, trip.since, trip.blocked = true, now, 1
	trip.count = len(trip.times) + trip.pending
	count := trip.count
	b.metrics.breakerTrip(name)
	b.mu.Unlock()

	b.logger.Error("circuit breaker open: automatic bans stopped until reset",
		"scope", name, "count", count, "window", b.cfg.Window, "rule", rule)
	if b.onTrip != nil {
		b.onTrip(ctx, name, now, count)
	}
	return name, false
}

// openSince tells whether the breaker of scope is open since since: still
// open from that trip, not reset (and perhaps tripped again) meanwhile.
func (b *breaker) openSince(scope string, since time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.scopes[scope]
	return s != nil && s.open && s.since.Equal(since)
}

// done ends a reservation of rule; applied says whether the ban changed
// Redis and so counts.
func (b *breaker) done(rule string, applied bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for _, name := range []string{ruleScope(rule), BreakerScopeOverall} {
		s := b.scopeLocked(name)
		s.pending--
		if applied {
			s.times = append(s.times, now)
		}
	}
	b.dropIdleLocked(ruleScope(rule))
}

// reset closes the breakers of scope ("" for every scope), forgets their
// counts and returns the names of those that were open, sorted.
func (b *breaker) reset(scope string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var names []string
	if scope == "" {
		for name := range b.scopes {
			names = append(names, name)
		}
	} else if _, ok := b.scopes[scope]; ok {
		names = []string{scope}
	}
	var was []string
	for _, name := range names {
		s := b.scopes[name]
		if s.open {
			was = append(was, name)
			b.metrics.breakerClosed(name)
		}
		*s = breakerScope{pending: s.pending}
		b.dropIdleLocked(name)
	}
	slices.Sort(was)
	return was
}

// restore opens the breakers of open (as RestoreBreakers read them) and
// returns the scopes it opened, sorted.
func (b *breaker) restore(open map[string]BreakerState) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var opened []string
	for name, st := range open {
		s := b.scopeLocked(name)
		if s.open {
			continue
		}
		s.open, s.since, s.count = true, st.Since, st.Count
		b.metrics.breakerOpened(name)
		opened = append(opened, name)
	}
	slices.Sort(opened)
	return opened
}

// states returns the state of the overall breaker and of every rule's
// breaker that counts something or is open.
func (b *breaker) states() map[string]BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	out := map[string]BreakerState{BreakerScopeOverall: {Limit: b.cfg.Overall}}
	for name, s := range b.scopes {
		limit := b.cfg.PerRule
		if name == BreakerScopeOverall {
			limit = b.cfg.Overall
		}
		st := BreakerState{Open: s.open, Limit: limit, Since: s.since, Blocked: s.blocked}
		if s.open {
			st.Count = s.count
		} else {
			s.pruneLocked(now, b.cfg.Window)
			st.Count = len(s.times)
		}
		out[name] = st
	}
	for name := range b.scopes {
		b.dropIdleLocked(name)
	}
	return out
}

// scopeLocked returns the scope called name, creating it. The caller holds
// b.mu.
func (b *breaker) scopeLocked(name string) *breakerScope {
	s := b.scopes[name]
	if s == nil {
		s = &breakerScope{}
		b.scopes[name] = s
	}
	return s
}

// dropIdleLocked forgets the rule scope called name if it holds nothing, so
// that the map does not grow with rules that fired long ago. The caller
// holds b.mu.
func (b *breaker) dropIdleLocked(name string) {
	s := b.scopes[name]
	if s != nil && name != BreakerScopeOverall && !s.open && s.pending == 0 && len(s.times) == 0 {
		delete(b.scopes, name)
	}
}

// pruneLocked drops the bans that left the window ending at now. The
// caller holds the breaker's mu.
func (s *breakerScope) pruneLocked(now time.Time, window time.Duration) {
	start := now.Add(-window)
	i := 0
	for i < len(s.times) && !s.times[i].After(start) {
		i++
	}
	if i > 0 {
		s.times = slices.Delete(s.times, 0, i)
	}
}
