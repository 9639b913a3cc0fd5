package respond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of the Store.
const (
	// DefaultPrefix is the key prefix NewStore uses when given none.
	DefaultPrefix = "vigil:"
	// DefaultDjangoCacheKey is the key an unmodified Django app reads with
	// cache.get("EMERGENCY_LOCKDOWN") under the default cache settings
	// (KEY_PREFIX "", VERSION 1); see DjangoKey.
	DefaultDjangoCacheKey = ":1:EMERGENCY_LOCKDOWN"
	// DefaultHistoryTTL is how long the ban history of an IP is kept after
	// its last ban.
	DefaultHistoryTTL = 90 * 24 * time.Hour
	// DefaultTokenTTL is how long jti denials and revocations are kept
	// when no TTL is given: simplejwt's longest default token lifetime
	// (REFRESH_TOKEN_LIFETIME is 1 day; 7 days leaves room for sites that
	// raise it).
	DefaultTokenTTL = 7 * 24 * time.Hour
)

// Ban is a ban to apply.
type Ban struct {
	// IP is what to ban: a /32 or /128 prefix for one address, or a wider
	// prefix (an IPv6 /64, say) for a network.
	IP netip.Prefix
	// Rule is the id of the rule that asked for the ban, if any.
	Rule string
	// Reason is a human explanation.
	Reason string
	// AlertID is the ID of the alert that caused the ban. Applying the same
	// alert twice changes nothing; empty means a manual ban, which never
	// counts as a repeat.
	AlertID string
	// Duration is how long the ban lasts, counted from when it is applied;
	// at least one second.
	Duration time.Duration
	// Ladder escalates repeat offences: the n-th applied ban of IP within
	// the history window (n = Offences + 1, decided atomically with the
	// write) lasts max(Duration, Ladder[min(n, len(Ladder)) - 1]). Empty
	// means every ban lasts Duration. The Store caps nothing: the caller
	// caps Duration and the rungs.
	Ladder []time.Duration
	// Actor is who asked: "rule:<id>" or "admin:<name>".
	Actor string
}

// BanRecord is a stored ban: the JSON value at <prefix>ban:ip:<ip> that the
// Django middleware reads.
type BanRecord struct {
	// IP is the banned address ("203.0.113.7", "2001:db8::1") or network
	// ("2001:db8:1:2::/64"), as in the key.
	IP string `json:"ip"`
	// Rule is the id of the rule that asked for the ban, if any.
	Rule string `json:"rule"`
	// Reason is a human explanation.
	Reason string `json:"reason"`
	// AlertID is the ID of the alert that caused the ban, if any.
	AlertID string `json:"alert_id"`
	// ExtendedBy is the ID of the last alert that extended the ban (a
	// rule that caught the address again while it was banned), if any.
	ExtendedBy string `json:"extended_by,omitempty"`
	// Actor is who asked: "rule:<id>" or "admin:<name>".
	Actor string `json:"actor"`
	// Created is when this record was written (UTC).
	Created time.Time `json:"created"`
	// Expires is when the ban lapses (UTC, whole seconds); the key's TTL
	// ends at the same moment.
	Expires time.Time `json:"expires"`
	// Offence is which ban of this IP this record is within the history
	// window: 1 for the first. Zero in records written before Vigil kept a
	// history.
	Offence int `json:"offence,omitempty"`
}

// StoreOptions are the Store's settings beyond the key prefix; zero fields
// take their defaults.
type StoreOptions struct {
	// DjangoCacheKey is the key of the Django cache entry that mirrors a
	// lockdown: it holds "1" while one is on, so that cache.get of the
	// entry in an unmodified Django app is truthy. Django's cache keys are
	// KEY_PREFIX:VERSION:key (see DjangoKey): ":1:EMERGENCY_LOCKDOWN" with
	// the default cache settings, "myapp:2:EMERGENCY_LOCKDOWN" with
	// KEY_PREFIX "myapp" and VERSION 2. The Django cache must use the same
	// Redis database. Default DefaultDjangoCacheKey.
	DjangoCacheKey string
	// HistoryTTL is how long Vigil remembers that an IP was banned, for
	// escalating repeat offences: each applied ban restarts it. Default 90
	// days.
	HistoryTTL time.Duration
}

// withDefaults returns o with zero fields set to their defaults.
func (o StoreOptions) withDefaults() StoreOptions {
	if o.DjangoCacheKey == "" {
		o.DjangoCacheKey = DefaultDjangoCacheKey
	}
	if o.HistoryTTL <= 0 {
		o.HistoryTTL = DefaultHistoryTTL
	}
	return o
}

// DjangoKey returns the Redis key under which Django's cache (the built-in
// RedisCache and django-redis, with the default KEY_FUNCTION) stores key for
// a cache with the given KEY_PREFIX and VERSION: DjangoKey("", 1,
// "EMERGENCY_LOCKDOWN") is ":1:EMERGENCY_LOCKDOWN".
func DjangoKey(keyPrefix string, version int, key string) string {
	return keyPrefix + ":" + strconv.Itoa(version) + ":" + key
}

// Store keeps Vigil's decisions in Redis under the contract the Django app
// reads (DESIGN.md, "Redis contract"). All keys but the Django mirror start
// with the prefix (default "vigil:"):
//
//   - ban:ip:<ip> holds a BanRecord as JSON, with a TTL that ends when the
//     ban expires; the sorted set bans indexes active bans (member <ip>,
//     score the expiry in unix seconds); ban:count:<ip> counts the bans of
//     <ip> applied within StoreOptions.HistoryTTL (for escalation);
//   - jti:deny:<jti> holds {"reason","actor","created"} while the token
//     is denied;
//   - revoke:user:<id> and revoke:all hold unix seconds as integer text:
//     tokens (of that user, or all) issued before then are invalid;
//   - lockdown holds a Lockdown as JSON while a lockdown is on, and the
//     Django cache key StoreOptions.DjangoCacheKey holds "1" for as long;
//   - every change is published on the channel <prefix>events as a JSON
//     object whose "type" is "ban", "unban", "jti-deny", "revoke-user",
//     "revoke-all", "lockdown" or "lockdown-off". A repeat that changes
//     nothing publishes nothing, and neither does a key lapsing by its TTL.
//
// <ip> is the canonical text of the address (IPv4-mapped IPv6 addresses are
// unmapped, IPv6 is lower case and compressed as RFC 5952 says), or the
// canonical CIDR of a network ("2001:db8:1:2::/64").
//
// Every write is one Lua script that changes its keys and publishes the
// change, so no crash leaves a key without its index entry, a lockdown
// without its Django mirror, or a change unannounced. With Redis Cluster
// every key a script touches must live in one slot: give the prefix a hash
// tag, such as "{vigil}:", and Django's cache the same tag in its
// KEY_PREFIX ("{vigil}", making the mirror "{vigil}:1:EMERGENCY_LOCKDOWN").
//
// A Store is safe for concurrent use; one per process is enough.
type Store struct {
	client redis.UniversalClient
	prefix string
	now    func() time.Time
	opts   StoreOptions // with defaults applied
}

// NewStore returns a Store writing through client under prefix (DefaultPrefix
// if empty), with default StoreOptions (see WithOptions). now gives the time
// bans and revocations are counted from (time.Now if nil); it should agree
// with Redis's clock, since TTLs are set relative to it.
func NewStore(client redis.UniversalClient, prefix string, now func() time.Time) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if now == nil {
		now = time.Now
	}
	return &Store{client: client, prefix: prefix, now: now, opts: StoreOptions{}.withDefaults()}
}

// WithOptions returns a copy of s with the options o (zero fields take
// their defaults); s itself is unchanged. Use it as
// NewStore(client, prefix, now).WithOptions(o).
func (s *Store) WithOptions(o StoreOptions) *Store {
	c := *s
	c.opts = o.withDefaults()
	return &c
}

// Options returns the Store's options, with defaults applied.
func (s *Store) Options() StoreOptions { return s.opts }

// Key returns the Redis key of a ban of ip, which is an address or a CIDR.
func (s *Store) Key(ip string) string { return s.prefix + "ban:ip:" + ip }

// HistoryKey returns the key counting the recent bans of ip, an address or
// a CIDR in canonical form.
func (s *Store) HistoryKey(ip string) string { return s.prefix + "ban:count:" + ip }

// IndexKey returns the key of the sorted set indexing active bans.
func (s *Store) IndexKey() string { return s.prefix + "bans" }

// Channel returns the pub/sub channel every change is published on.
func (s *Store) Channel() string { return s.prefix + "events" }

// banScript applies a ban. It decides idempotency, the no-shortening rule
// and escalation itself, so that two responders racing on one IP cannot
// undo each other or count one offence twice.
//
// KEYS[1] ban key, KEYS[2] index, KEYS[3] history counter. ARGV[1] ip,
// ARGV[2] record JSON (the script sets expires and offence), ARGV[3] now in
// unix ms, ARGV[4] alert id, ARGV[5] channel, ARGV[6] rule, ARGV[7] history
// TTL in ms, then one pair per rung of the ladder (at least one): the expiry
// in unix ms (whole seconds) and its RFC 3339 text. The n-th offence takes
// the pair min(n, rungs).
//
// A ban of an address banned already is not another offence: it keeps the
// stored offence n and, if rung n of its ladder ends later than the stored
// ban, extends it: a rule's ban (ARGV[6] set) only moves the stored
// record's expiry, a manual one replaces the record. Otherwise nothing
// changes.
//
// It returns {applied (0 or 1), stored JSON}.
var banScript = redis.NewScript(`
local now = tonumber(ARGV[3])
local rungs = (#ARGV - 7) / 2
local old = redis.call('GET', KEYS[1])
local n, oldrec
if old then
  local ok, rec = pcall(cjson.decode, old)
  if ok and type(rec) == 'table' then
    if ARGV[4] ~= '' and (rec.alert_id == ARGV[4] or rec.extended_by == ARGV[4]) then
      return {0, old}
    end
    n = tonumber(rec.offence)
    oldrec = rec
  end
  if not n or n < 1 then n = 1 end
  local oldexp
  local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if score then
    oldexp = tonumber(score) * 1000
  else
    local pttl = redis.call('PTTL', KEYS[1])
    if pttl > 0 then oldexp = now + pttl end
  end
  if oldexp and oldexp >= tonumber(ARGV[6 + 2 * math.min(n, rungs)]) then
    return {0, old}
  end
else
  n = redis.call('INCR', KEYS[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
end
local i = 6 + 2 * math.min(n, rungs)
local exp = tonumber(ARGV[i])
local new = cjson.decode(ARGV[2])
if oldrec and ARGV[6] ~= '' then
  new = oldrec -- a rule extends the ban it caught again; it stays that ban
  new.extended_by = ARGV[4] -- and the alert that did is not applied twice
end
new.expires = ARGV[i + 1]
new.offence = n
local value = cjson.encode(new)
redis.call('SET', KEYS[1], value, 'PX', exp - now)
local sec = math.floor(exp / 1000)
redis.call('ZADD', KEYS[2], sec, ARGV[1])
local rule = new.rule
if type(rule) ~= 'string' then rule = '' end
redis.call('PUBLISH', ARGV[5], cjson.encode({type = 'ban', ip = ARGV[1], expires = sec, rule = rule}))
return {1, value}
`)

// unbanScript removes a ban. KEYS[1] ban key, KEYS[2] index. ARGV[1] ip,
// ARGV[2] channel, ARGV[3] now in unix seconds. It returns 1 if a ban was
// removed, else 0, and publishes only then. The ban history stays.
var unbanScript = redis.NewScript(`
local old = redis.call('GET', KEYS[1])
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if n == 0 then
  return 0
end
local rule = ''
local ok, rec = pcall(cjson.decode, old)
if ok and type(rec) == 'table' and type(rec.rule) == 'string' then
  rule = rec.rule
end
redis.call('PUBLISH', ARGV[2], cjson.encode({type = 'unban', ip = ARGV[1], expires = tonumber(ARGV[3]), rule = rule}))
return 1
`)

// Ban applies b and returns the record now stored.
//
// A ban of an IP not banned now is an offence: it counts in the IP's ban
// history (see Offences), which picks its rung of b.Ladder, and applied is
// true. A ban of an IP banned already is not: whatever caught the address
// again (often the 403s its ban itself answers), one incident is one
// offence. It keeps the stored offence n and changes nothing (applied is
// false, the stored record is returned) unless it would end later than the
// stored ban (at rung n): then the ban is extended to that later expiry and
// applied is true. A rule's ban (b.Rule set) extends the stored record,
// which keeps saying what banned the address first (the audit trail has
// the extension); a manual one replaces it (rule, reason, alert, actor,
// created). A ban never shortens one, and an alert retried after a crash
// (the AlertID of the stored ban) changes nothing.
func (s *Store) Ban(ctx context.Context, b Ban) (rec BanRecord, applied bool, err error) {
	ip, err := prefixString(b.IP)
	if err != nil {
		return BanRecord{}, false, fmt.Errorf("applying ban: %w", err)
	}
	if b.Duration < time.Second {
		return BanRecord{}, false, fmt.Errorf("applying ban of %s: duration %s: must be at least 1s", ip, b.Duration)
	}
	now := s.now().UTC()
	rec = BanRecord{
		IP:      ip,
		Rule:    b.Rule,
		Reason:  b.Reason,
		AlertID: b.AlertID,
		Actor:   b.Actor,
		Created: now,
	}
	value, err := json.Marshal(rec)
	if err != nil {
		return BanRecord{}, false, fmt.Errorf("applying ban of %s: encoding record: %w", ip, err)
	}
	args := []any{ip, value, now.UnixMilli(), b.AlertID, s.Channel(), b.Rule, s.opts.HistoryTTL.Milliseconds()}
	for n := 1; n == 1 || n <= len(b.Ladder); n++ {
		// Whole seconds, so that the record, the index score, the message
		// and the key's TTL all name the same instant.
		exp := now.Add(escalate(b.Duration, b.Ladder, n)).Truncate(time.Second)
		text, _ := exp.MarshalText()
		args = append(args, exp.UnixMilli(), text)
	}
	res, err := banScript.Run(ctx, s.client,
		[]string{s.Key(ip), s.IndexKey(), s.HistoryKey(ip)}, args...,
	).Slice()
	if err != nil {
		return BanRecord{}, false, fmt.Errorf("applying ban of %s: %w", ip, err)
	}
	if len(res) != 2 {
		return BanRecord{}, false, fmt.Errorf("applying ban of %s: script returned %d values, want 2", ip, len(res))
	}
	flag, _ := res[0].(int64)
	stored, _ := res[1].(string)
	var got BanRecord
	if err := json.Unmarshal([]byte(stored), &got); err != nil {
		return BanRecord{}, false, fmt.Errorf("applying ban of %s: decoding stored record: %w", ip, err)
	}
	return got, flag == 1, nil
}

// escalate returns how long the n-th offence is banned for: max(d,
// ladder[min(n, len(ladder)) - 1]), or d if ladder is empty or n < 1.
func escalate(d time.Duration, ladder []time.Duration, n int) time.Duration {
	if len(ladder) == 0 || n < 1 {
		return d
	}
	return max(d, ladder[min(n, len(ladder))-1])
}

// Offences returns how many bans of ip, an address or a CIDR network, were
// applied within the history window (StoreOptions.HistoryTTL after the last
// one); 0 if none. An IPv6 address and the network a ban widened it to are
// different targets: ask about what was banned.
func (s *Store) Offences(ctx context.Context, ip string) (int64, error) {
	p, err := ParseTarget(ip)
	if err != nil {
		return 0, fmt.Errorf("reading ban history: %w", err)
	}
	key, _ := prefixString(p)
	n, err := s.client.Get(ctx, s.HistoryKey(key)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading ban history of %s: %w", key, err)
	}
	return n, nil
}

// Unban removes the ban of ip, an address or a CIDR, and reports whether
// there was one. The change is published only when a ban was removed.
func (s *Store) Unban(ctx context.Context, ip string) (removed bool, err error) {
	p, err := ParseTarget(ip)
	if err != nil {
		return false, fmt.Errorf("removing ban: %w", err)
	}
	key, _ := prefixString(p)
	n, err := unbanScript.Run(ctx, s.client,
		[]string{s.Key(key), s.IndexKey()},
		key, s.Channel(), s.now().Unix(),
	).Int64()
	if err != nil {
		return false, fmt.Errorf("removing ban of %s: %w", key, err)
	}
	return n == 1, nil
}

// Bans returns the active bans, soonest-expiring first, read through the
// index. It first drops index entries whose expiry has passed. An index
// entry whose key is gone (deleted by hand, say) is left out of the list
// and dropped from the index once its expiry passes.
func (s *Store) Bans(ctx context.Context) ([]BanRecord, error) {
	now := s.now().Unix()
	// A ban expiring at second E is over once now >= E.
	if err := s.client.ZRemRangeByScore(ctx, s.IndexKey(), "-inf", fmt.Sprint(now)).Err(); err != nil {
		return nil, fmt.Errorf("listing bans: pruning index: %w", err)
	}
	ips, err := s.client.ZRangeByScore(ctx, s.IndexKey(), &redis.ZRangeBy{Min: "(" + fmt.Sprint(now), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("listing bans: reading index: %w", err)
	}
	if len(ips) == 0 {
		return nil, nil
	}
	// One GET per key in a pipeline rather than MGET: a cluster client
	// splits a pipeline by slot, while MGET across slots fails.
	cmds := make([]*redis.StringCmd, len(ips))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ip := range ips {
			cmds[i] = p.Get(ctx, s.Key(ip))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("listing bans: reading records: %w", err)
	}
	out := make([]BanRecord, 0, len(ips))
	for i, cmd := range cmds {
		v, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing bans: reading %s: %w", s.Key(ips[i]), err)
		}
		var rec BanRecord
		if err := json.Unmarshal([]byte(v), &rec); err != nil {
			return nil, fmt.Errorf("listing bans: decoding %s: %w", s.Key(ips[i]), err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// ActiveBans counts the index entries that have not expired. It reads only
// the index, so it is cheap enough for a metric.
func (s *Store) ActiveBans(ctx context.Context) (int64, error) {
	n, err := s.client.ZCount(ctx, s.IndexKey(), "("+fmt.Sprint(s.now().Unix()), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("counting bans: %w", err)
	}
	return n, nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging redis: %w", err)
	}
	return nil
}

// ParseTarget parses what a ban applies to: an address ("203.0.113.7",
// "2001:db8::1") or a network in CIDR notation ("2001:db8:1:2::/64"). An
// IPv4-mapped IPv6 address is unmapped and an address's zone is dropped, so
// that one client always has one key; a network is masked to its prefix
// length.
func ParseTarget(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a CIDR network", s)
	}
	if p.Addr().Is4In6() {
		// ::ffff:a.b.c.d/n (n >= 96) is the IPv4 network a.b.c.d/(n-96).
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped network needs a prefix length of at least 96", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// prefixString returns the text a ban of p is keyed by: the address for a
// single address, else the masked CIDR.
func prefixString(p netip.Prefix) (string, error) {
	if !p.IsValid() {
		return "", errors.New("invalid IP prefix")
	}
	a := p.Addr()
	if a.Is4In6() {
		if p.Bits() < 96 {
			return "", fmt.Errorf("%s: an IPv4-mapped network needs a prefix length of at least 96", p)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		a = p.Addr()
	}
	if p.IsSingleIP() {
		return a.String(), nil
	}
	return p.Masked().String(), nil
}
