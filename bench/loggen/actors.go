package loggen

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Kinds of Actor.
const (
	// KindScanner is a directory scanner, meant to fire http-404-scan.
	KindScanner = "scanner"
	// KindAllowlisted is a scanner in the default allow-list, meant to
	// fire http-404-scan with Allowlisted set.
	KindAllowlisted = "allowlisted-scanner"
	// KindSlowScanner is a scanner kept under the 404 threshold, meant not
	// to fire.
	KindSlowScanner = "slow-scanner"
	// KindBruteForcer is a login brute forcer, meant to fire
	// auth-bruteforce.
	KindBruteForcer = "bruteforcer"
	// KindAttacker sends payloads of one class, meant to fire that class's
	// rule: path-traversal, sql-injection or script-injection.
	KindAttacker = "attacker"
	// KindDecoy looks suspicious and is meant not to fire.
	KindDecoy = "decoy"
)

// Actor is one planted client: a scanner, brute forcer or attacker meant to
// fire a rule, or a slow scanner or decoy meant not to. Stats lists them so
// that a detector's false positive can be traced to what the client did.
type Actor struct {
	// Name identifies the actor in Truth.Actor, e.g. "decoy-03".
	Name string `json:"name"`
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Key is the client IP, as in Truth.Key.
	Key string `json:"key"`
	// Note says what the actor does, e.g. "gobuster, 1200 paths in 12s".
	Note string `json:"note"`
	// Expect is the rule the actor is meant to fire; empty for slow
	// scanners and decoys. The truth is computed, not taken from here.
	Expect string `json:"expect,omitempty"`
}

// actor is an Actor and its client.
type actor struct {
	Actor
	client int32
}

const second = int64(time.Second)

// plan draws the actors' requests into g.planned, kinds interleaved so
// that when the budget (lines) runs out every kind is still present.
func (g *gen) plan(budget int) {
	c := g.cfg
	perScanner := max(100, budget/(2*max(1, c.Scanners+c.Allowlisted)))
	kinds := []struct {
		kind string
		n    int
		plan func(i int, a *actor)
	}{
		{KindScanner, c.Scanners, func(i int, a *actor) { g.planScanner(i, a, false, perScanner) }},
		{KindBruteForcer, c.BruteForcers, g.planBruteForcer},
		{KindAttacker, c.Attackers, g.planAttacker},
		{KindDecoy, c.Decoys, g.planDecoy},
		{KindSlowScanner, c.SlowScanners, g.planSlowScanner},
		{KindAllowlisted, c.Allowlisted, func(i int, a *actor) { g.planScanner(i, a, true, perScanner) }},
	}
	for i := 0; ; i++ {
		more := false
		for _, k := range kinds {
			if i >= k.n {
				continue
			}
			more = true
			mark := len(g.planned)
			a := actor{Actor: Actor{Kind: k.kind, Name: fmt.Sprintf("%s-%02d", k.kind, i+1)}}
			k.plan(i, &a)
			if len(g.planned) > budget || len(g.planned) == mark {
				g.planned = g.planned[:mark]
				continue
			}
			a.Key = g.clients[a.client].key
			g.clients[a.client].actor = int32(len(g.actors))
			g.actors = append(g.actors, a)
		}
		if !more {
			return
		}
	}
}

// actorClient allocates an actor's client: IPv6 with the configured share,
// else IPv4 from the documentation ranges or public-looking, a tenth of
// those logged IPv4-mapped. want6 and wantMapped force the choice.
func (g *gen) actorClient(want6, wantMapped bool) int32 {
	switch {
	case want6 && g.cfg.IPv6Share > 0:
		return g.newClient(addrV6, false)
	case wantMapped:
		return g.newClient(addrDoc, true)
	case g.rng.Float64() < g.cfg.IPv6Share:
		return g.newClient(addrV6, false)
	}
	fam := addrPublic
	if g.rng.IntN(2) == 0 {
		fam = addrDoc
	}
	return g.newClient(fam, g.rng.IntN(10) == 0)
}

// req appends one planned request.
func (g *gen) req(a *actor, at int64, method, target, proto string, status, size int, ref, ua string) {
	g.planned = append(g.planned, rec{at: at, client: a.client, method: method, target: target, proto: proto,
		status: int16(status), bytes: int32(size), ref: ref, ua: ua})
}

// spread returns the time of the k-th of n requests evenly spread, with
// jitter, over [start, start+dur).
func (g *gen) spread(start, dur int64, k, n int) int64 {
	return start + int64((float64(k)+g.rng.Float64())*float64(dur)/float64(n))
}

// window places an activity of length dur (shortened to fit) at a random
// point of the log, returning its start and length.
func (g *gen) window(dur int64) (int64, int64) {
	dur = min(dur, g.span*9/10)
	return int64(g.rng.Float64() * float64(g.span-dur)), dur
}

// logUniform draws an integer in [lo, hi] with a log-uniform distribution.
func (g *gen) logUniform(lo, hi int) int {
	return int(math.Round(float64(lo) * math.Pow(float64(hi)/float64(lo), g.rng.Float64())))
}

// seconds draws a duration in [lo, hi] seconds.
func (g *gen) seconds(lo, hi float64) int64 {
	return int64((lo + g.rng.Float64()*(hi-lo)) * 1e9)
}

// missing returns n distinct wordlist paths the site answers 404, from a
// random point of the list. It leaves out paths ending in '/', so that no
// two differ only by a trailing slash and even a detector that folds them
// counts every one.
func (g *gen) missing(n int) []string {
	wl := wordlist()
	out := make([]string, 0, n)
	for i := g.rng.IntN(len(wl)); len(out) < n; i++ {
		p := wl[i%len(wl)]
		if st, _ := scanAnswer(p); st == 404 && !strings.HasSuffix(p, "/") {
			out = append(out, p)
		}
	}
	return out
}

// minuteBoundary returns the offset of a random minute boundary of the
// event clock with at least margin of log on either side.
func (g *gen) minuteBoundary(margin int64) (int64, bool) {
	intoMinute := ((g.startSec%60+60)%60)*second + g.startNano
	first := (60*second - intoMinute) % (60 * second)
	var bs []int64
	for b := first; b+margin <= g.span; b += 60 * second {
		if b >= margin {
			bs = append(bs, b)
		}
	}
	if len(bs) == 0 {
		return 0, false
	}
	return bs[g.rng.IntN(len(bs))], true
}
