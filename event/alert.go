package event

import "time"

// Alert is a detection: a rule fired for a key. The detector publishes it on
// VIGIL_ALERTS (subject vigil.alerts.<rule>) and the responder acts on it.
// Alerts are rare, so they travel as plain encoding/json.
type Alert struct {
	// ID is deterministic: derived from the rule, the key and the event that
	// made the rule fire, so re-processing the same input yields the same
	// ID and the bus and the responder can drop the repeat.
	ID string `json:"id"`
	// Rule is the id of the rule that fired.
	Rule string `json:"rule"`
	// Description is the rule's one-line description.
	Description string `json:"description,omitempty"`
	// Severity is the rule's severity: low, medium, high or critical.
	Severity string `json:"severity"`
	// KeyField names the field the rule groups by ("source.ip",
	// "user.name"); empty for a global rule.
	KeyField string `json:"key_field,omitempty"`
	// Key is the value of KeyField the rule fired for ("203.0.113.7").
	Key string `json:"key"`
	// At is the event time of the event that made the rule fire.
	At time.Time `json:"at"`
	// FirstSeen is the event time of the oldest event still counted.
	FirstSeen time.Time `json:"first_seen"`
	// Window is the rule's window.
	Window Duration `json:"window"`
	// Count is what was counted when the rule fired: events for a count
	// rule, distinct values for a distinct rule, 1 for a signature.
	Count int `json:"count"`
	// Allowlisted is true when Key is in an allow-listed network: the alert
	// is recorded and nothing is done.
	Allowlisted bool `json:"allowlisted"`
	// Actions are what the rule asks the responder to do.
	Actions []ActionSpec `json:"actions,omitempty"`
	// Evidence holds a few sample values (paths, request targets) that made
	// the rule fire, for a human reading the alert.
	Evidence []string `json:"evidence,omitempty"`
	// UserID is the user.id of the event that made the rule fire, when it
	// had one: what a revoke_user action revokes when the rule groups by
	// user name.
	UserID string `json:"user_id,omitempty"`
	// Source is the event source the rule reads (access, csp, app).
	Source string `json:"source,omitempty"`
	// Stored is when the bus stored the alert (its JetStream timestamp),
	// set by the responder from the message; not part of the JSON.
	Stored time.Time `json:"-"`
}

// Action kinds a rule can ask for.
const (
	// ActionBan bans the key, an IP address, for Duration.
	ActionBan = "ban"
	// ActionRevokeUser revokes every token of the key, a user id (the rule
	// groups by "user.id"), issued before the alert's time.
	ActionRevokeUser = "revoke_user"
	// ActionLockdown puts the whole site into an emergency lockdown of
	// Mode for Duration (0: until an operator releases it).
	ActionLockdown = "lockdown"
)

// Action kinds that only operators ask for (through the admin API or the
// CLI); they appear as Audit.Action but a rule cannot ask for them.
const (
	ActionUnban       = "unban"        // remove a ban
	ActionJTIDeny     = "jti_deny"     // deny one token by its jti
	ActionRevokeAll   = "revoke_all"   // revoke every token issued so far
	ActionLockdownOff = "lockdown_off" // release a lockdown
)

// Lockdown modes (ActionSpec.Mode).
const (
	// LockdownFull refuses every request.
	LockdownFull = "full"
	// LockdownReadOnly refuses every request but GET, HEAD and OPTIONS.
	LockdownReadOnly = "read-only"
)

// ActionSpec is one action a rule asks for.
type ActionSpec struct {
	// Kind is the action kind: ActionBan, ActionRevokeUser or
	// ActionLockdown.
	Kind string `json:"kind"`
	// Duration is how long a ban or a lockdown lasts. For a ban, 0 means
	// the responder's default; for a lockdown, until released. Revocations
	// ignore it.
	Duration Duration `json:"duration,omitempty"`
	// Mode is the mode of a lockdown: LockdownFull (the default when
	// empty) or LockdownReadOnly. Other kinds ignore it.
	Mode string `json:"mode,omitempty"`
}

// Audit is one entry of the append-only audit trail (stream VIGIL_AUDIT,
// subject vigil.audit.<action>): every action taken or refused, automatic or
// manual, with who and why.
type Audit struct {
	// ID is deterministic for automatic actions (alert ID + action) so a
	// retried action is not audited twice.
	ID string `json:"id"`
	// Time is when the action was applied (wall clock).
	Time time.Time `json:"@timestamp"`
	// Action is the action kind: one of the Action constants ("ban",
	// "unban", "jti_deny", "revoke_user", "revoke_all", "lockdown",
	// "lockdown_off").
	Action string `json:"action"`
	// Target is what the action applies to: an IP or CIDR network for a
	// ban, a jti, a user id; empty for revoke_all and the lockdown actions,
	// which apply to the whole site.
	Target string `json:"target"`
	// Actor is who asked: "rule:<id>" for automatic actions, "admin:<name>"
	// for manual ones.
	Actor string `json:"actor"`
	// Reason is a human explanation.
	Reason string `json:"reason,omitempty"`
	// AlertID links to the alert that caused the action, if any.
	AlertID string `json:"alert_id,omitempty"`
	// Result is "applied" (Redis changed), "unchanged" (a repeat: nothing
	// to change), "skipped-allowlisted", "dry-run", "breaker-open" (an
	// automatic ban stopped by the circuit breaker), "refused" (a manual
	// action that failed validation) or "failed".
	Result string `json:"result"`
	// Duration is the ban or lockdown duration, when there is one.
	Duration Duration `json:"duration,omitempty"`
	// Expires is when the action lapses, when it does.
	Expires time.Time `json:"expires,omitzero"`
	// Offence is, for a ban, which ban of this IP (or network) it is
	// within the ban history window: 1 for the first, 2 for the second...;
	// repeat offences get longer bans.
	Offence int `json:"offence,omitempty"`
	// Error says why Result is "failed", "refused" or "breaker-open".
	Error string `json:"error,omitempty"`
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("72h0m0s") and also reads a number of seconds.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
