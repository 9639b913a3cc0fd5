package respond

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-soc/vigil/event"
)

// Kinds of manual actions (ManualAction.Kind), as the admin API and the CLI
// name them. Apply also accepts the audit's action names ("jti_deny",
// "revoke_user", "revoke_all", "lockdown", "lockdown_off"); audits always
// carry the latter (the event.Action constants).
const (
	ManualBan         = "ban"          // ban Target, an IP or CIDR network
	ManualUnban       = "unban"        // remove the ban of Target
	ManualJTIDeny     = "jti-deny"     // deny the token whose jti is Target
	ManualRevokeUser  = "revoke-user"  // revoke the tokens of the user id Target
	ManualRevokeAll   = "revoke-all"   // revoke every token
	ManualLockdownOn  = "lockdown-on"  // turn a lockdown on
	ManualLockdownOff = "lockdown-off" // release the lockdown
)

// manualKinds maps the accepted spellings of a manual kind to the audit's
// action name.
var manualKinds = map[string]string{
	ManualBan:               event.ActionBan,
	ManualUnban:             event.ActionUnban,
	ManualJTIDeny:           event.ActionJTIDeny,
	event.ActionJTIDeny:     event.ActionJTIDeny,
	ManualRevokeUser:        event.ActionRevokeUser,
	event.ActionRevokeUser:  event.ActionRevokeUser,
	ManualRevokeAll:         event.ActionRevokeAll,
	event.ActionRevokeAll:   event.ActionRevokeAll,
	ManualLockdownOn:        event.ActionLockdown,
	event.ActionLockdown:    event.ActionLockdown,
	ManualLockdownOff:       event.ActionLockdownOff,
	event.ActionLockdownOff: event.ActionLockdownOff,
}

// maxReason bounds the length of a manual action's reason, in characters.
const maxReason = 1024

// ManualAction is an operator's request, from the admin API or the CLI.
type ManualAction struct {
	// Kind is one of the Manual constants.
	Kind string `json:"kind"`
	// Target is what the action applies to: an IP address or CIDR network
	// (ban, unban), a jti (jti-deny), a user id (revoke-user). The other
	// kinds ignore it. A ban's network must be IPv6, of a length the
	// Django app's IPV6_BAN_PREFIXES lists (default 64), or the middleware
	// will not look it up; IPv4 networks are refused for that reason.
	Target string `json:"target,omitempty"`
	// Duration is how long: a ban (0: Config.DefaultBan; at most
	// Config.MaxBan), a jti denial or a revocation (0: Config.TokenTTL), a
	// lockdown (0: until released). At least 1s when set.
	Duration time.Duration `json:"duration,omitempty"`
	// Mode is the mode of a lockdown: "full" (the default) or "read-only".
	Mode string `json:"mode,omitempty"`
	// Reason is why, for the audit trail and, for a lockdown, for the
	// Django app's 503 answers. At most 1024 characters, no control
	// characters.
	Reason string `json:"reason,omitempty"`
	// Actor is the operator's name; the audit's actor is "admin:<Actor>".
	Actor string `json:"actor,omitempty"`
	// Force bans Target even if it is allow-listed.
	Force bool `json:"force,omitempty"`
}

// FieldError is a manual action refused because of one field of the
// request; Field is the field's JSON name ("kind", "target", "duration",
// "mode", "reason"), so that the admin API can answer 400 naming it.
type FieldError struct {
	Field string
	Msg   string
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Apply applies an operator's action and returns its audit, which the
// caller writes to the audit trail. Manual actions honour DryRun ("dry-run":
// nothing written) and are never stopped by the circuit breaker.
//
// A bad request returns a *FieldError and an audit with Result "refused";
// so does a ban of an allow-listed target (Config.Allow) without Force.
// A Redis failure returns the error (Retryable tells whether to try again)
// and an audit with Result "failed". Otherwise the audit's Result is
// "applied" or "unchanged" (nothing to change: no such ban to remove, no
// lockdown to release, a revocation as late or later already there).
// Audit IDs of manual actions are unique.
func (r *Responder) Apply(ctx context.Context, req ManualAction) (event.Audit, error) {
	now := r.cfg.Now()
	kind, known := manualKinds[req.Kind]
	au := event.Audit{
		ID:     manualID(now),
		Time:   now.UTC(),
		Action: kind,
		Actor:  "admin:" + strings.TrimPrefix(cmp.Or(req.Actor, "unknown"), "admin:"),
		Reason: req.Reason,
	}
	if !known {
		au.Action = "unknown"
		return r.refuse(au, &FieldError{"kind", fmt.Sprintf("%q: must be one of ban, unban, jti-deny, revoke-user, revoke-all, lockdown-on, lockdown-off", req.Kind)})
	}
	if err := checkReason(req.Reason); err != nil {
		return r.refuse(au, err)
	}
	if req.Duration < 0 || (req.Duration > 0 && req.Duration < time.Second) {
		return r.refuse(au, &FieldError{"duration", req.Duration.String() + ": must be 0 (the default) or at least 1s"})
	}

	var do func() (applied bool, err error)
	switch kind {
	case event.ActionBan, event.ActionUnban:
		p, err := ParseTarget(req.Target)
		if err != nil {
			return r.refuse(au, &FieldError{"target", err.Error()})
		}
		au.Target, _ = prefixString(p)
		if kind == event.ActionUnban {
			do = func() (bool, error) { return r.store.Unban(ctx, au.Target) }
			break
		}
		if p.Addr().Is4() && !p.IsSingleIP() {
			// The Django middleware looks IPv4 bans up by address only: a
			// network's key would never be read.
			return r.refuse(au, &FieldError{"target", au.Target + ": IPv4 bans are of single addresses (the Django middleware does not look up IPv4 networks)"})
		}
		d := req.Duration
		if d == 0 {
			d = r.cfg.DefaultBan
		}
		if d > r.cfg.MaxBan {
			return r.refuse(au, &FieldError{"duration", fmt.Sprintf("%s: must be at most %s (max_ban)", d, r.cfg.MaxBan)})
		}
		au.Duration = event.Duration(d)
		au.Expires = now.Add(d).Truncate(time.Second).UTC()
		if allowed(r.cfg.Allow, p) {
			if !req.Force {
				return r.refuse(au, &FieldError{"target", au.Target + " is allow-listed; set force to ban it anyway"})
			}
			au.Reason = strings.TrimSpace(au.Reason + " (forced over the allow-list)")
			r.logger.Warn("manual ban of an allow-listed target, forced", "ip", au.Target, "actor", au.Actor)
		}
		do = func() (bool, error) {
			rec, applied, err := r.store.Ban(ctx, Ban{IP: p, Reason: au.Reason, Duration: d, Actor: au.Actor})
			au.Expires, au.Offence = rec.Expires, rec.Offence
			return applied, err
		}
	case event.ActionJTIDeny:
		if err := checkTokenID(req.Target); err != nil {
			return r.refuse(au, &FieldError{"target", "jti " + err.Error()})
		}
		au.Target = req.Target
		ttl := cmp.Or(req.Duration, r.cfg.TokenTTL)
		au.Duration = event.Duration(ttl)
		au.Expires = now.Add(ttl).Truncate(time.Second).UTC()
		do = func() (bool, error) { return r.store.DenyJTI(ctx, req.Target, ttl, req.Reason, au.Actor) }
	case event.ActionRevokeUser, event.ActionRevokeAll:
		ttl := cmp.Or(req.Duration, r.cfg.TokenTTL)
		au.Expires = now.Add(ttl).Truncate(time.Second).UTC()
		if kind == event.ActionRevokeAll {
			do = func() (bool, error) { return r.store.RevokeAll(ctx, now, ttl, req.Reason, au.Actor) }
			break
		}
		if err := checkTokenID(req.Target); err != nil {
			return r.refuse(au, &FieldError{"target", "user id " + err.Error()})
		}
		au.Target = req.Target
		do = func() (bool, error) { return r.store.RevokeUser(ctx, req.Target, now, ttl, req.Reason, au.Actor) }
	case event.ActionLockdown:
		mode := cmp.Or(req.Mode, event.LockdownFull)
		if err := checkMode(mode); err != nil {
			return r.refuse(au, &FieldError{"mode", strings.TrimPrefix(err.Error(), "mode ")})
		}
		l := Lockdown{Mode: mode, Reason: req.Reason, By: au.Actor, Since: now}
		if req.Duration > 0 {
			l.Until = now.Add(req.Duration)
			au.Duration = event.Duration(req.Duration)
			au.Expires = l.Until.Truncate(time.Second).UTC()
		}
		do = func() (bool, error) { return true, r.store.SetLockdown(ctx, l) }
	case event.ActionLockdownOff:
		do = func() (bool, error) { return r.store.ReleaseLockdown(ctx, au.Actor) }
	}

	if r.cfg.DryRun {
		au.Result = ResultDryRun
		r.logger.Info("dry-run: would apply manual action", "action", au.Action, "target", au.Target, "actor", au.Actor)
		r.metrics.action(au.Action, au.Result)
		return au, nil
	}
	applied, err := do()
	if err != nil {
		au, err = failed(au, err)
		r.logger.Warn("manual action failed", "action", au.Action, "target", au.Target, "actor", au.Actor, "err", err)
		r.metrics.action(au.Action, au.Result)
		return au, err
	}
	au.Result = ResultUnchanged
	if applied {
		au.Result = ResultApplied
	}
	r.logger.Info("manual action", "action", au.Action, "target", au.Target, "result", au.Result, "actor", au.Actor, "reason", au.Reason)
	r.metrics.action(au.Action, au.Result)
	return au, nil
}

// refuse completes au as the audit of a refused manual action.
func (r *Responder) refuse(au event.Audit, fe *FieldError) (event.Audit, error) {
	au.Result = ResultRefused
	au.Error = fe.Error()
	r.logger.Info("manual action refused", "action", au.Action, "actor", au.Actor, "err", fe)
	r.metrics.action(metricKind(au.Action), au.Result)
	return au, fe
}

// checkReason checks a manual action's reason.
func checkReason(s string) *FieldError {
	switch {
	case !utf8.ValidString(s):
		return &FieldError{"reason", "not valid UTF-8"}
	case utf8.RuneCountInString(s) > maxReason:
		return &FieldError{"reason", "longer than " + strconv.Itoa(maxReason) + " characters"}
	case strings.ContainsFunc(s, unicode.IsControl):
		return &FieldError{"reason", "contains a control character"}
	}
	return nil
}

// manualID returns a new unique audit ID for a manual action.
func manualID(now time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "manual:" + strconv.FormatInt(now.UnixMilli(), 10) + ":" + hex.EncodeToString(b[:])
}
