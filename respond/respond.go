// Package respond acts on alerts: it applies the actions a rule asks for
// (IP bans, revocation of a user's tokens, an emergency lockdown) in Redis,
// for the Django app to enforce, and describes each as an audit entry. It
// also applies operators' manual actions (Responder.Apply) and guards
// automatic bans with an allow-list, a cap on their length and a circuit
// breaker.
//
// Every automatic action is idempotent per alert: handling an alert again
// after a crash or a redelivery changes nothing and reports "unchanged".
// Errors say through Retryable whether the alert should be retried later
// (Redis is down) or given up (the alert itself is bad).
package respond

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/vigil-soc/vigil/event"
)

// Defaults of Config.
const (
	DefaultMaxBan     = 30 * 24 * time.Hour
	DefaultBanLength  = 72 * time.Hour
	DefaultIPv6Prefix = 128
)

// Config is the responder's configuration.
type Config struct {
	// DryRun makes the responder decide and audit every action without
	// doing it: nothing is written to Redis and audits say "dry-run".
	// Default false.
	DryRun bool
	// MaxBan caps the duration of any ban, escalated or manual: a rule
	// asking for more gets MaxBan, an operator asking for more is refused.
	// Default 30 days (720h).
	MaxBan time.Duration
	// DefaultBan is the duration of a ban whose action names none.
	// Default 72h.
	DefaultBan time.Duration
	// IPv6PrefixLen widens automatic bans of IPv6 addresses to the network
	// of this prefix length, since one client often holds a whole /64: 64
	// bans 2001:db8:1:2::/64 for 2001:db8:1:2::7. Default 128 (the address
	// alone); IPv4 bans are always of the single address, and manual bans
	// are of exactly the target given.
	IPv6PrefixLen int
	// Ladder escalates automatic bans of repeat offenders: the n-th ban of
	// an IP (or network) within the Store's history window (90 days by
	// default) lasts max(the rule's duration, Ladder[min(n, len)-1]),
	// capped at MaxBan. [72h, 720h] bans a first offender for at least
	// 72 hours and every later offence for 30 days. Default none: every
	// ban lasts what the rule asks.
	Ladder []time.Duration
	// TokenTTL is how long revocations (and manual jti denials given no
	// duration) are kept: the refresh-token lifetime of the Django app
	// (simplejwt's REFRESH_TOKEN_LIFETIME), after which no token they
	// refuse is left. Default 7 days (168h).
	TokenTTL time.Duration
	// Allow reports whether an address is allow-listed (loopback, the
	// operator's networks). Automatic bans of it are skipped
	// ("skipped-allowlisted") even if the detector did not flag the alert,
	// and manual bans of it are refused unless forced. For a network, the
	// first and last address are asked. Default nil: nothing is
	// allow-listed here (the detector's flag still applies).
	Allow func(netip.Addr) bool
	// Breaker configures the circuit breaker of automatic bans; see
	// BreakerConfig.
	Breaker BreakerConfig
	// OnTrip, if set, is called once each time a breaker opens, with its
	// scope ("overall" or "rule:<id>") and the count that opened it, so the
	// caller can raise a critical alert. It is called synchronously from
	// Handle, outside any lock, and must not block for long.
	OnTrip func(scope string, count int)
	// Now is the clock of audits and of the circuit breaker's window.
	// Default: the Store's clock.
	Now func() time.Time
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MaxBan <= 0 {
		c.MaxBan = DefaultMaxBan
	}
	if c.DefaultBan <= 0 {
		c.DefaultBan = DefaultBanLength
	}
	if c.IPv6PrefixLen == 0 {
		c.IPv6PrefixLen = DefaultIPv6Prefix
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	c.Breaker = c.Breaker.withDefaults()
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every bad field of c, after defaults, in one error.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.MaxBan < time.Second {
		errs = append(errs, fmt.Errorf("max_ban: %s: must be at least 1s", c.MaxBan))
	}
	if c.DefaultBan < time.Second {
		errs = append(errs, fmt.Errorf("default_ban: %s: must be at least 1s", c.DefaultBan))
	}
	if c.IPv6PrefixLen < 1 || c.IPv6PrefixLen > 128 {
		errs = append(errs, fmt.Errorf("ipv6_prefix_len: %d: must be between 1 and 128", c.IPv6PrefixLen))
	}
	for i, d := range c.Ladder {
		if d < time.Second {
			errs = append(errs, fmt.Errorf("ladder[%d]: %s: must be at least 1s", i, d))
		}
	}
	if c.TokenTTL < time.Second {
		errs = append(errs, fmt.Errorf("token_ttl: %s: must be at least 1s", c.TokenTTL))
	}
	if c.Breaker.PerRule < 1 {
		errs = append(errs, fmt.Errorf("breaker.per_rule: %d: must be at least 1", c.Breaker.PerRule))
	}
	if c.Breaker.Overall < 1 {
		errs = append(errs, fmt.Errorf("breaker.overall: %d: must be at least 1", c.Breaker.Overall))
	}
	if c.Breaker.Window < time.Second {
		errs = append(errs, fmt.Errorf("breaker.window: %s: must be at least 1s", c.Breaker.Window))
	}
	return errors.Join(errs...)
}

// Action is one kind of action a rule can ask for (event.ActionSpec.Kind).
//
// Responder.Handle calls Do once for each ActionSpec of that kind in an
// alert, except for allow-listed alerts, which it audits itself. Do must be
// idempotent per alert ID: a second call for the same alert (a redelivery,
// a retry after a crash) changes nothing and reports ResultUnchanged. Do
// must honour dry-run, does not keep a or spec after it returns, and may be
// called concurrently. It returns the audit of what it did; on error the
// audit has Result ResultFailed and Retryable(err) tells whether a later
// retry may succeed.
type Action interface {
	Do(ctx context.Context, a *event.Alert, spec event.ActionSpec) (event.Audit, error)
}

// Responder applies the actions an alert asks for, and operators' manual
// actions. It is safe for concurrent use.
type Responder struct {
	store   *Store
	cfg     Config // with defaults applied
	actions map[string]Action
	breaker *breaker
	logger  *slog.Logger
	metrics *Metrics
	// breakerRecord orders the writes of the breakers' Redis record
	// (trip, reset, restore), so that it always agrees with memory.
	breakerRecord sync.Mutex
}

// NewResponder returns a Responder that keeps its decisions in store. Zero
// fields of cfg take their defaults (cfg.Now: the store's clock). logger may
// be nil (no logs); m may be nil (no metrics).
func NewResponder(store *Store, cfg Config, logger *slog.Logger, m *Metrics) *Responder {
	if cfg.Now == nil {
		cfg.Now = store.now
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Responder{store: store, cfg: cfg, logger: logger, metrics: m}
	r.breaker = newBreaker(cfg.Breaker, cfg.Now, r.tripped, m, logger)
	r.actions = map[string]Action{
		event.ActionBan:        &banAction{store: store, cfg: cfg, breaker: r.breaker, logger: logger},
		event.ActionRevokeUser: &revokeUserAction{store: store, cfg: cfg, breaker: r.breaker, logger: logger},
		event.ActionLockdown:   &lockdownAction{store: store, cfg: cfg, logger: logger},
	}
	return r
}

// tripped records in Redis that the breaker of scope opened at since, so
// that a restart does not close it, and calls Config.OnTrip. A reset that
// came first wins: the record is written only while that trip is still
// open. The write outlives ctx's cancellation (by at most 5 s): a breaker
// tripping as Vigil stops must still be recorded.
func (r *Responder) tripped(ctx context.Context, scope string, since time.Time, count int) {
	r.breakerRecord.Lock()
	if r.breaker.openSince(scope, since) {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := r.store.SaveOpenBreaker(wctx, scope, since, count); err != nil {
			r.logger.Error("recording the open circuit breaker in Redis failed: a restart would close it", "scope", scope, "err", err)
		}
		cancel()
	}
	r.breakerRecord.Unlock()
	if r.cfg.OnTrip != nil {
		r.cfg.OnTrip(scope, count)
	}
}

// Handle applies every action of a, in order, and returns one audit per
// action: Result "applied", "unchanged" (a repeat of this alert: nothing
// changed), "skipped-allowlisted" (a.Allowlisted, or an allow-listed IP:
// nothing done), "dry-run" or "breaker-open" (a ban stopped by the circuit
// breaker: nothing done, and no error, so the alert is still recorded and
// acknowledged). Audit IDs are a.ID + ":" + the action kind, so the audits
// of a redelivered alert repeat the same IDs and the audit stream can drop
// them.
//
// Handle stops at the first error and returns the audits of the actions
// done so far with it; they are true and may be published. If
// Retryable(err), retry is true: the caller should retry the whole alert
// later (the actions already done will report "unchanged"). Otherwise the
// alert cannot succeed and the last audit is the failed action's, with
// Result "failed" and Error set.
func (r *Responder) Handle(ctx context.Context, a *event.Alert) (audits []event.Audit, retry bool, err error) {
	audits = make([]event.Audit, 0, len(a.Actions))
	for _, spec := range a.Actions {
		if a.Allowlisted {
			au := baseAudit(a, spec.Kind, r.cfg.Now())
			au.Target = a.Key
			au.Result = ResultAllowlisted
			r.logger.Info("allow-listed: not acting", "action", spec.Kind, "key", a.Key, "rule", a.Rule, "alert", a.ID)
			r.metrics.action(metricKind(spec.Kind), au.Result)
			audits = append(audits, au)
			continue
		}
		act, ok := r.actions[spec.Kind]
		if !ok {
			au := baseAudit(a, spec.Kind, r.cfg.Now())
			au.Target = a.Key
			au.Result = ResultFailed
			err := fmt.Errorf("handling alert %s: unknown action kind %q", a.ID, spec.Kind)
			au.Error = err.Error()
			r.metrics.action(metricKind(spec.Kind), au.Result)
			return append(audits, au), false, err
		}
		au, err := act.Do(ctx, a, spec)
		r.metrics.action(metricKind(spec.Kind), au.Result)
		if err != nil {
			err = fmt.Errorf("handling alert %s: %w", a.ID, err)
			if Retryable(err) {
				return audits, true, err
			}
			return append(audits, au), false, err
		}
		audits = append(audits, au)
	}
	return audits, false, nil
}

// RefreshActive reads the number of active bans from Redis and sets the
// vigil_respond_bans_active gauge; call it periodically.
func (r *Responder) RefreshActive(ctx context.Context) error {
	n, err := r.store.ActiveBans(ctx)
	if err != nil {
		return err
	}
	r.metrics.setBansActive(n)
	return nil
}

// baseAudit returns the fields every audit of action kind for a shares.
func baseAudit(a *event.Alert, kind string, now time.Time) event.Audit {
	return event.Audit{
		ID:      a.ID + ":" + kind,
		Time:    now.UTC(),
		Action:  kind,
		Actor:   "rule:" + a.Rule,
		Reason:  reason(a),
		AlertID: a.ID,
	}
}

// reason explains an alert in one line: "Too many distinct 404s (50 in
// 1m0s)".
func reason(a *event.Alert) string {
	s := a.Description
	if s == "" {
		s = "rule " + a.Rule + " fired"
	}
	if a.Count > 0 && a.Window > 0 {
		s += fmt.Sprintf(" (%d in %s)", a.Count, time.Duration(a.Window))
	}
	return s
}

// ResetBreaker closes the circuit breaker of scope ("overall" or
// "rule:<id>"; "" for every scope), forgets its count so that bans flow
// again, and returns the scopes that were open, sorted. The admin API and
// the CLI call it once an operator has looked into the trip. The record in
// Redis goes first: when Redis cannot be reached, nothing changes.
func (r *Responder) ResetBreaker(ctx context.Context, scope string) ([]string, error) {
	var scopes []string
	if scope != "" {
		scopes = []string{scope}
	}
	r.breakerRecord.Lock()
	defer r.breakerRecord.Unlock()
	if err := r.store.ClearBreakers(ctx, scopes...); err != nil {
		return nil, fmt.Errorf("clearing the breaker record in Redis: %w", err)
	}
	was := r.breaker.reset(scope)
	if len(was) > 0 {
		r.logger.Warn("circuit breaker reset: automatic bans resume", "scopes", was)
	}
	return was, nil
}

// Breakers returns the state of the circuit breakers by scope: always
// "overall", and "rule:<id>" for every rule that banned within the window
// or whose breaker is open.
func (r *Responder) Breakers() map[string]BreakerState { return r.breaker.states() }

// metricKinds are the action kinds the metrics know.
var metricKinds = []string{
	event.ActionBan, event.ActionUnban, event.ActionJTIDeny, event.ActionRevokeUser,
	event.ActionRevokeAll, event.ActionLockdown, event.ActionLockdownOff,
}

// metricKind bounds the action label to known kinds.
func metricKind(kind string) string {
	for _, k := range metricKinds {
		if k == kind {
			return kind
		}
	}
	return "unknown"
}
