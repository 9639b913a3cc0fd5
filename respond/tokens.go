package respond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-soc/vigil/event"
)

// maxTokenID bounds the length of a jti or a user id, in characters.
const maxTokenID = 256

// JTIDenial is the JSON value at <prefix>jti:deny:<jti>. The Django side
// refuses a token whose jti has a key, whatever the value.
type JTIDenial struct {
	// Reason is a human explanation.
	Reason string `json:"reason"`
	// Actor is who asked: "admin:<name>" or "rule:<id>".
	Actor string `json:"actor"`
	// Created is when the denial was written (UTC).
	Created time.Time `json:"created"`
}

// JTIKey returns the key that denies the token with this jti.
func (s *Store) JTIKey(jti string) string { return s.prefix + "jti:deny:" + jti }

// RevokeUserKey returns the key holding the revocation time of a user's
// tokens.
func (s *Store) RevokeUserKey(userID string) string { return s.prefix + "revoke:user:" + userID }

// RevokeAllKey returns the key holding the revocation time of every token.
func (s *Store) RevokeAllKey() string { return s.prefix + "revoke:all" }

// denyScript writes a jti denial unless one lasting at least as long (to
// within a second) is there. KEYS[1] the key. ARGV[1] the JSON value,
// ARGV[2] TTL in ms, ARGV[3] channel, ARGV[4] message. It returns 1 if it
// wrote, else 0, and publishes only then.
var denyScript = redis.NewScript(`
local ttl = tonumber(ARGV[2])
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -1 or (pttl >= 0 and pttl >= ttl - 1000) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`)

// revokeScript raises a revocation time. KEYS[1] the key. ARGV[1] the new
// time in unix seconds (integer text), ARGV[2] TTL in ms, ARGV[3] channel,
// ARGV[4] message.
//
// A time already there that is as late or later stays (0 is returned and
// nothing published), but its TTL grows to ARGV[2] if it is shorter, so
// that the earlier revocation keeps covering the tokens it must. A later
// time replaces it (1 is returned and the message published) and keeps the
// longer of the old and the new TTL. A value that is not a number is
// replaced.
var revokeScript = redis.NewScript(`
local new = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local old = tonumber(redis.call('GET', KEYS[1]) or '')
local pttl = redis.call('PTTL', KEYS[1])
if old and old >= new then
  if pttl >= 0 and pttl < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  return 0
end
if pttl == -1 or pttl > ttl then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`)

// DenyJTI denies the token whose jti claim is jti, for ttl (DefaultTokenTTL
// if ttl <= 0; choose the token's remaining lifetime), and reports whether
// it wrote: a denial already there that lasts at least as long, to within a
// second, is left as it is and applied is false. A shorter one is replaced.
// The change is published as {"type":"jti-deny","jti":...,"expires":<unix
// seconds>,"actor":...}.
//
// jti must be 1 to 256 characters of valid UTF-8 without whitespace or
// control characters; a ttl under a second is refused.
func (s *Store) DenyJTI(ctx context.Context, jti string, ttl time.Duration, reason, actor string) (applied bool, err error) {
	if err := checkTokenID(jti); err != nil {
		return false, fmt.Errorf("denying jti: %w", err)
	}
	ttl, err = tokenTTL(ttl)
	if err != nil {
		return false, fmt.Errorf("denying jti %s: %w", jti, err)
	}
	now := s.now().UTC()
	value, err := json.Marshal(JTIDenial{Reason: reason, Actor: actor, Created: now})
	if err != nil {
		return false, fmt.Errorf("denying jti %s: encoding value: %w", jti, err)
	}
	msg, err := json.Marshal(struct {
		Type    string `json:"type"`
		JTI     string `json:"jti"`
		Expires int64  `json:"expires"`
		Actor   string `json:"actor"`
	}{"jti-deny", jti, now.Add(ttl).Unix(), actor})
	if err != nil {
		return false, fmt.Errorf("denying jti %s: encoding message: %w", jti, err)
	}
	n, err := denyScript.Run(ctx, s.client, []string{s.JTIKey(jti)},
		value, ttl.Milliseconds(), s.Channel(), msg).Int64()
	if err != nil {
		return false, fmt.Errorf("denying jti %s: %w", jti, err)
	}
	return n == 1, nil
}

// JTIDenied returns the denial of jti, or nil if the token is not denied.
func (s *Store) JTIDenied(ctx context.Context, jti string) (*JTIDenial, error) {
	v, err := s.client.Get(ctx, s.JTIKey(jti)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading jti denial of %s: %w", jti, err)
	}
	var d JTIDenial
	if err := json.Unmarshal(v, &d); err != nil {
		return nil, fmt.Errorf("reading jti denial of %s: decoding: %w", jti, err)
	}
	return &d, nil
}

// RevokeUser revokes every token of the user userID issued up to at: it
// sets <prefix>revoke:user:<userID> to the unix second after at (integer
// text; Django refuses tokens whose iat is smaller, and iat is whole
// seconds, so a token issued within at's second is refused too: the one an
// attacker got from the login that fired the rule), for ttl (DefaultTokenTTL if ttl <= 0; choose the
// refresh-token lifetime, after which no older token is left to refuse).
//
// It never lowers a revocation: a time already there that is as late or
// later stays and applied is false, so retrying with the same at changes
// nothing. It never shortens one either (see revokeScript). The change is
// published as {"type":"revoke-user","user":...,"at":<unix seconds>,
// "actor":...,"reason":...}.
//
// userID must be 1 to 256 characters of valid UTF-8 without whitespace or
// control characters; a ttl under a second is refused.
func (s *Store) RevokeUser(ctx context.Context, userID string, at time.Time, ttl time.Duration, reason, actor string) (applied bool, err error) {
	if err := checkTokenID(userID); err != nil {
		return false, fmt.Errorf("revoking tokens of user: %w", err)
	}
	applied, err = s.revoke(ctx, s.RevokeUserKey(userID), "revoke-user", userID, at, ttl, reason, actor)
	if err != nil {
		return false, fmt.Errorf("revoking tokens of user %s: %w", userID, err)
	}
	return applied, nil
}

// RevokeAll revokes every token issued up to at: it sets
// <prefix>revoke:all as RevokeUser sets a user's key, with the same rules,
// and publishes {"type":"revoke-all","at":<unix seconds>,"actor":...,
// "reason":...}.
func (s *Store) RevokeAll(ctx context.Context, at time.Time, ttl time.Duration, reason, actor string) (applied bool, err error) {
	applied, err = s.revoke(ctx, s.RevokeAllKey(), "revoke-all", "", at, ttl, reason, actor)
	if err != nil {
		return false, fmt.Errorf("revoking all tokens: %w", err)
	}
	return applied, nil
}

// revoke runs revokeScript on key and publishes a message of type typ.
func (s *Store) revoke(ctx context.Context, key, typ, user string, at time.Time, ttl time.Duration, reason, actor string) (bool, error) {
	if at.IsZero() {
		return false, errors.New("no revocation time")
	}
	ttl, err := tokenTTL(ttl)
	if err != nil {
		return false, err
	}
	// The stored time is the second after at: a token's iat is whole
	// seconds, so one issued in at's second, the attacker's from the very
	// login that fired the rule, has iat = at.Unix() and must be refused
	// too ("issued before" the stored time, DESIGN.md).
	sec := at.Unix() + 1
	msg, err := json.Marshal(struct {
		Type   string `json:"type"`
		User   string `json:"user,omitempty"`
		At     int64  `json:"at"`
		Actor  string `json:"actor"`
		Reason string `json:"reason,omitempty"`
	}{typ, user, sec, actor, reason})
	if err != nil {
		return false, fmt.Errorf("encoding message: %w", err)
	}
	n, err := revokeScript.Run(ctx, s.client, []string{key},
		strconv.FormatInt(sec, 10), ttl.Milliseconds(), s.Channel(), msg).Int64()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// Revoked returns the revocation time stored at key (RevokeUserKey or
// RevokeAllKey); ok is false if there is none.
func (s *Store) Revoked(ctx context.Context, key string) (at time.Time, ok bool, err error) {
	n, err := s.client.Get(ctx, key).Int64()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading %s: %w", key, err)
	}
	return time.Unix(n, 0).UTC(), true, nil
}

// tokenTTL applies the default to ttl and checks it.
func tokenTTL(ttl time.Duration) (time.Duration, error) {
	if ttl <= 0 {
		return DefaultTokenTTL, nil
	}
	if ttl < time.Second {
		return 0, fmt.Errorf("ttl %s: must be at least 1s", ttl)
	}
	return ttl, nil
}

// checkTokenID checks a jti or a user id: what it may be is up to the
// Django app, but it becomes part of a Redis key and of log lines.
func checkTokenID(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case !utf8.ValidString(s):
		return fmt.Errorf("%q: not valid UTF-8", s)
	case utf8.RuneCountInString(s) > maxTokenID:
		return fmt.Errorf("%.32q...: longer than %d characters", s, maxTokenID)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%q: contains whitespace or a control character", s)
		}
	}
	return nil
}

var _ Action = (*revokeUserAction)(nil)

// revokeUserAction revokes the tokens of the alert's key, a user id.
type revokeUserAction struct {
	store   *Store
	cfg     Config // with defaults applied
	breaker *breaker
	logger  *slog.Logger
}

// Do revokes every token of the user (a.Key when the rule groups by user.id,
// else the firing event's a.UserID) issued up to the later of a.At and
// a.Stored (when the alert was stored: tokens the attacker got between the
// firing event and the detection go too), for cfg.TokenTTL. Using the
// alert's times, not the wall clock, makes a retry write the same value,
// which the Store reports as unchanged. The alert
// must group by "user.id" or its event carry one: a user name is not what
// tokens carry. Automatic revocations count in the circuit breaker as bans
// do, and stop with them ("breaker-open").
func (v *revokeUserAction) Do(ctx context.Context, a *event.Alert, spec event.ActionSpec) (event.Audit, error) {
	now := v.cfg.Now()
	au := baseAudit(a, event.ActionRevokeUser, now)
	user := a.UserID
	if a.KeyField == userIDField {
		user = a.Key
	}
	au.Target = user
	if user == "" {
		return failed(au, fmt.Errorf("revoking tokens for %s %q: the event named no user.id", a.KeyField, a.Key))
	}
	if err := checkTokenID(user); err != nil {
		return failed(au, fmt.Errorf("revoking tokens of user: %w", err))
	}
	if a.At.IsZero() {
		return failed(au, errors.New("revoking tokens: the alert has no time"))
	}
	at := a.At
	if a.Stored.After(at) {
		// Not past now: a bus server whose clock runs ahead must not
		// revoke the user's next logins too.
		at = minTime(a.Stored, now)
	}
	au.Expires = now.Add(v.cfg.TokenTTL).UTC().Truncate(time.Second)
	if v.cfg.DryRun {
		au.Result = ResultDryRun
		v.logger.Info("dry-run: would revoke tokens", "user", user, "up_to", at, "rule", a.Rule, "alert", a.ID)
		return au, nil
	}
	if scope, ok := v.breaker.reserve(ctx, a.Rule); !ok {
		au.Result = ResultBreakerOpen
		au.Error = "circuit breaker " + scope + " is open"
		v.logger.Warn("circuit breaker open: not revoking", "scope", scope, "user", user, "rule", a.Rule, "alert", a.ID)
		return au, nil
	}
	applied, err := v.store.RevokeUser(ctx, user, at, v.cfg.TokenTTL, au.Reason, au.Actor)
	v.breaker.done(a.Rule, err == nil && applied)
	if err != nil {
		return failed(au, err)
	}
	if !applied {
		au.Result = ResultUnchanged
		v.logger.Debug("revocation unchanged: as late or later already", "user", user, "alert", a.ID)
		return au, nil
	}
	au.Result = ResultApplied
	v.logger.Info("tokens revoked", "user", user, "up_to", at, "rule", a.Rule, "alert", a.ID)
	return au, nil
}

// userIDField is the alert key field revoke_user acts on.
const userIDField = "user.id"

// minTime returns the earlier of a and b.
func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
