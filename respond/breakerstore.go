package respond

import (
	"context"
	"encoding/json"
	"time"
)

// An open circuit breaker is kept in Redis, in the hash <prefix>breakers
// (field: the scope; value: JSON {"since","count"}), so that restarting
// Vigil does not resume the automatic bans a broken rule was stopped from
// making: only an operator's reset does.

// BreakersKey returns the key of the hash of open circuit breakers.
func (s *Store) BreakersKey() string { return s.prefix + "breakers" }

// storedBreaker is the value of one field of the breakers hash.
type storedBreaker struct {
	Since time.Time `json:"since"`
	Count int       `json:"count"`
}

// SaveOpenBreaker records that the breaker of scope opened at since after
// count bans.
func (s *Store) SaveOpenBreaker(ctx context.Context, scope string, since time.Time, count int) error {
	v, err := json.Marshal(storedBreaker{Since: since.UTC(), Count: count})
	if err != nil {
		return err
	}
	return s.client.HSet(ctx, s.BreakersKey(), scope, v).Err()
}

// ClearBreakers forgets the open breakers of scopes; no scope: all of them.
func (s *Store) ClearBreakers(ctx context.Context, scopes ...string) error {
	if len(scopes) == 0 {
		return s.client.Del(ctx, s.BreakersKey()).Err()
	}
	return s.client.HDel(ctx, s.BreakersKey(), scopes...).Err()
}

// OpenBreakers returns the open breakers recorded, by scope. A field whose
// value is not what SaveOpenBreaker writes still counts as open (with no
// time or count): the safe reading of a breaker record.
func (s *Store) OpenBreakers(ctx context.Context) (map[string]BreakerState, error) {
	fields, err := s.client.HGetAll(ctx, s.BreakersKey()).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]BreakerState, len(fields))
	for scope, v := range fields {
		var sb storedBreaker
		_ = json.Unmarshal([]byte(v), &sb)
		out[scope] = BreakerState{Open: true, Since: sb.Since, Count: sb.Count}
	}
	return out, nil
}

// RestoreBreakers opens again the breakers recorded in Redis, as they were
// when they opened. `vigil run` calls it before handling alerts, so that a
// restart does not close a breaker an operator has not reset.
func (r *Responder) RestoreBreakers(ctx context.Context) ([]string, error) {
	r.breakerRecord.Lock()
	defer r.breakerRecord.Unlock()
	open, err := r.store.OpenBreakers(ctx)
	if err != nil {
		return nil, err
	}
	return r.breaker.restore(open), nil
}
