package respond

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/vigil-soc/vigil/event"
)

var _ Action = (*banAction)(nil)

// banAction bans the alert's key, an IP address, in Redis.
type banAction struct {
	store   *Store
	cfg     Config // with defaults applied
	breaker *breaker
	logger  *slog.Logger
}

// Do bans a.Key for spec.Duration (cfg.DefaultBan if zero), escalated by
// cfg.Ladder for a repeat offender, at most cfg.MaxBan. An IPv6 address is
// widened to cfg.IPv6PrefixLen. A key that cfg.Allow allow-lists is not
// banned ("skipped-allowlisted"), and neither is any key while the circuit
// breaker of the rule, or the overall one, is open ("breaker-open").
func (b *banAction) Do(ctx context.Context, a *event.Alert, spec event.ActionSpec) (event.Audit, error) {
	now := b.cfg.Now()
	au := baseAudit(a, event.ActionBan, now)
	au.Target = a.Key

	d := time.Duration(spec.Duration)
	if d <= 0 {
		d = b.cfg.DefaultBan
	}
	d = min(d, b.cfg.MaxBan)
	au.Duration = event.Duration(d)

	addr, target, err := b.target(a.Key)
	if err != nil {
		return failed(au, err)
	}
	au.Target, _ = prefixString(target)

	if allowed(b.cfg.Allow, target) || allowed(b.cfg.Allow, netip.PrefixFrom(addr, addr.BitLen())) {
		au.Result = ResultAllowlisted
		b.logger.Info("allow-listed: not banning", "ip", au.Target, "rule", a.Rule, "alert", a.ID)
		return au, nil
	}

	ladder := b.ladder()
	if b.cfg.DryRun {
		n, err := b.store.Offences(ctx, au.Target)
		if err != nil {
			return failed(au, err)
		}
		au.Offence = int(n) + 1
		d = escalate(d, ladder, au.Offence)
		au.Duration = event.Duration(d)
		au.Result = ResultDryRun
		au.Expires = now.Add(d).Truncate(time.Second).UTC()
		b.logger.Info("dry-run: would ban", "ip", au.Target, "duration", d, "offence", au.Offence, "rule", a.Rule, "alert", a.ID)
		return au, nil
	}

	if scope, ok := b.breaker.reserve(ctx, a.Rule); !ok {
		au.Result = ResultBreakerOpen
		au.Error = "circuit breaker " + scope + " is open"
		b.logger.Warn("circuit breaker open: not banning", "scope", scope, "ip", au.Target, "rule", a.Rule, "alert", a.ID)
		return au, nil
	}
	rec, applied, err := b.store.Ban(ctx, Ban{
		IP:       target,
		Rule:     a.Rule,
		Reason:   au.Reason,
		AlertID:  a.ID,
		Duration: d,
		Ladder:   ladder,
		Actor:    au.Actor,
	})
	// An extension of a ban stored already (its record names another
	// alert) is no new ban for the breaker to count.
	b.breaker.done(a.Rule, err == nil && applied && rec.AlertID == a.ID)
	if err != nil {
		return failed(au, err)
	}
	au.Expires = rec.Expires
	au.Offence = rec.Offence
	au.Duration = event.Duration(escalate(d, ladder, rec.Offence))
	if !applied {
		au.Result = ResultUnchanged
		b.logger.Info("already banned: not another offence, ban unchanged", "ip", au.Target, "expires", rec.Expires, "banned_by", rec.Rule, "rule", a.Rule, "alert", a.ID)
		return au, nil
	}
	au.Result = ResultApplied
	b.logger.Info("ban applied", "ip", au.Target, "expires", rec.Expires, "offence", rec.Offence, "rule", a.Rule, "alert", a.ID)
	return au, nil
}

// ladder returns cfg.Ladder with every rung capped at cfg.MaxBan.
func (b *banAction) ladder() []time.Duration {
	if len(b.cfg.Ladder) == 0 {
		return nil
	}
	out := make([]time.Duration, len(b.cfg.Ladder))
	for i, d := range b.cfg.Ladder {
		out[i] = min(d, b.cfg.MaxBan)
	}
	return out
}

// target parses key, an IP address, and returns it with what a ban of it
// applies to: the address, or for IPv6 the network of cfg.IPv6PrefixLen
// around it.
func (b *banAction) target(key string) (netip.Addr, netip.Prefix, error) {
	addr, err := netip.ParseAddr(key)
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, fmt.Errorf("banning %q: not an IP address", key)
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() && b.cfg.IPv6PrefixLen < 128 {
		p, err := addr.Prefix(b.cfg.IPv6PrefixLen)
		return addr, p, err
	}
	return addr, netip.PrefixFrom(addr, addr.BitLen()), nil
}

// allowed reports whether allow allow-lists what a ban of p would cover.
// allow answers for addresses, so a network counts as allow-listed when
// its first or last address is: an allow-listed address strictly inside a
// wider network is not detected. A nil allow allows nothing.
func allowed(allow func(netip.Addr) bool, p netip.Prefix) bool {
	if allow == nil || !p.IsValid() {
		return false
	}
	first := p.Masked().Addr()
	if allow(first) {
		return true
	}
	if p.IsSingleIP() {
		return false
	}
	return allow(lastAddr(p))
}

// lastAddr returns the last address of the network p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		switch {
		case bits >= 8:
			bits -= 8
		case bits > 0:
			b[i] |= 0xff >> bits
			bits = 0
		default:
			b[i] = 0xff
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// failed completes au as the audit of a failed action.
func failed(au event.Audit, err error) (event.Audit, error) {
	au.Result = ResultFailed
	au.Error = err.Error()
	return au, err
}
