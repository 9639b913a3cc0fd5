package detect

import (
	"net/netip"
	"time"
)

// markBanned notes, when c bans the address key (not allow-listed, so the
// responder does ban it) at event time t, that key is banned for the
// rule's ban, at most BanQuiet: until then every rule grouping by
// source.ip passes over its events after t (counted as suppressed). One
// incident is then one alert: the 403s a banned scanner is answered do not
// fire the 403 rules on top of the rule that banned it. The responder, which may ban longer (ban_ladder),
// not at all (its circuit breaker open) or lift a ban (an operator), is
// not asked: past BanQuiet the address is watched again.
func (e *Engine) markBanned(c *compiled, key Key, t int64) {
	if c.Actions.Ban <= 0 || e.opts.BanQuiet <= 0 || c.groupBy != fieldSourceIP || e.opts.Allow.Contains(keyAddr(key)) {
		return
	}
	until := t + int64(min(time.Duration(c.Actions.Ban), e.opts.BanQuiet))
	if b, ok := e.banned[key]; ok && until <= b.until {
		return
	}
	e.banned[key] = banSpan{from: t, until: until}
	if len(e.banned) > e.opts.MaxKeys {
		// Over: the ended ones go, then arbitrary ones down to 90 %
		// (such an address is watched again early: the safe direction).
		for k, b := range e.banned {
			if b.until <= e.watermark || len(e.banned) > e.opts.MaxKeys*9/10 {
				delete(e.banned, k)
			}
		}
	}
}

// banSpan is when a rule banned an address: the banning event's time and
// the end of the rule's ban. Events of the banning event's time still
// count in every rule (one request can be several rules' evidence, as a
// scanner's first probe often is; access log times are whole seconds, so
// its neighbours in that second count too), later ones until the end are
// passed over.
type banSpan struct{ from, until int64 }

// Forgive gives the addresses of p a fresh start from the event time at,
// as an operator's unban then asks: the cooldowns of the rules grouping
// by source.ip for those addresses (baseline rules, which keep their own,
// aside), and their ban quiet, end at at if they began before it (a rule
// that fired after the unban keeps its own). Events before at stay passed
// over, so a lagging detector or a backlog does not ban again for what was
// unbanned; later ones count. Without it a rule that banned an address stays quiet for it
// for its cooldown (a ban's 72 h by default), and an unbanned address that
// attacks again is not banned again. It returns how many cooldowns it cut
// short.
func (e *Engine) Forgive(p netip.Prefix, at time.Time) int {
	t := at.UnixNano()
	p = p.Masked()
	cut := 0
	for tk, until := range e.quiet {
		c := e.rs.rules[tk.rule]
		if c.groupBy == fieldSourceIP && until > t && until-c.cooldown <= t && p.Contains(keyAddr(tk.key)) {
			e.quiet[tk] = t
			cut++
		}
	}
	for k, b := range e.banned {
		if b.from <= t && b.until > t && p.Contains(keyAddr(k)) {
			e.banned[k] = banSpan{from: b.from, until: t}
		}
	}
	return cut
}
