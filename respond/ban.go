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
	store  *Store
	cfg    Config // with defaults applied
	logger *slog.Logger
}

// Do bans a.Key for spec.Duration (cfg.DefaultBan if zero, at most
// cfg.MaxBan). An IPv6 address is widened to cfg.IPv6PrefixLen.
func (b *banAction) Do(ctx context.Context, a *event.Alert, spec event.ActionSpec) (event.Audit, error) {
	now := b.store.now()
	au := baseAudit(a, event.ActionBan, now)
	au.Target = a.Key

	d := time.Duration(spec.Duration)
	if d <= 0 {
		d = b.cfg.DefaultBan
	}
	d = min(d, b.cfg.MaxBan)
	au.Duration = event.Duration(d)

	target, err := b.target(a.Key)
	if err != nil {
		return failed(au, err)
	}
	au.Target, _ = prefixString(target)

	if b.cfg.DryRun {
		au.Result = ResultDryRun
		au.Expires = now.Add(d).Truncate(time.Second).UTC()
		b.logger.Info("dry-run: would ban", "ip", au.Target, "duration", d, "rule", a.Rule, "alert", a.ID)
		return au, nil
	}

	rec, applied, err := b.store.Ban(ctx, Ban{
		IP:       target,
		Rule:     a.Rule,
		Reason:   au.Reason,
		AlertID:  a.ID,
		Duration: d,
		Actor:    au.Actor,
	})
	if err != nil {
		return failed(au, err)
	}
	au.Expires = rec.Expires
	if !applied {
		au.Result = ResultUnchanged
		b.logger.Debug("ban unchanged: alert already applied", "ip", au.Target, "expires", rec.Expires, "alert", a.ID)
		return au, nil
	}
	au.Result = ResultApplied
	b.logger.Info("ban applied", "ip", au.Target, "expires", rec.Expires, "rule", a.Rule, "alert", a.ID)
	return au, nil
}

// target returns what a ban of key applies to: the address, or for IPv6
// the network of cfg.IPv6PrefixLen around it.
func (b *banAction) target(key string) (netip.Prefix, error) {
	addr, err := netip.ParseAddr(key)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("banning %q: not an IP address", key)
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() && b.cfg.IPv6PrefixLen < 128 {
		return addr.Prefix(b.cfg.IPv6PrefixLen)
	}
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

// failed completes au as the audit of a failed action.
func failed(au event.Audit, err error) (event.Audit, error) {
	au.Result = ResultFailed
	au.Error = err.Error()
	return au, err
}
