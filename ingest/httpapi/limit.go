package httpapi

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// limiter is a token bucket per client: an IPv4 address, or an IPv6 /64
// (one host or one subscriber owns a whole /64, and would otherwise get a
// bucket per address). Idle buckets are swept. The map is capped so that a
// flood from many addresses cannot grow memory without bound: at the cap
// the buckets that have refilled are dropped (at most once a second), and
// if none has, an arbitrary one, so a new client always gets a bucket of
// its own and a full burst.
type limiter struct {
	rate  float64
	burst float64

	mu        sync.Mutex
	buckets   map[netip.Addr]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxBuckets = 100_000

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), buckets: map[netip.Addr]*bucket{}}
}

// limiterKey is the bucket of ip: itself for IPv4, its /64 for IPv6.
func limiterKey(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// allow takes a token for ip, reporting whether one was there.
func (l *limiter) allow(ip netip.Addr, now time.Time) bool {
	key := limiterKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			if now.Sub(l.lastSweep) >= time.Second {
				l.sweep(now)
				l.lastSweep = now
			}
			for k := range l.buckets {
				if len(l.buckets) < maxBuckets {
					break
				}
				delete(l.buckets, k)
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// spent reports whether ip's bucket is out of tokens, taking none: a new
// client's is not.
func (l *limiter) spent(ip netip.Addr, now time.Time) bool {
	key := limiterKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	return b != nil && b.tokens+now.Sub(b.last).Seconds()*l.rate < 1
}

// sweepEvery drops buckets that have refilled (idle clients) until ctx is done.
func (l *limiter) sweepEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			l.mu.Lock()
			l.sweep(now)
			l.mu.Unlock()
		}
	}
}

// sweep drops the buckets that have refilled (idle clients).
func (l *limiter) sweep(now time.Time) {
	for ip, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, ip)
		}
	}
}

// replayCache remembers signatures for a while, so a captured signed request
// cannot be sent again. It keeps two generations of at most
// maxReplayGeneration signatures: a new one starts every ttl, or when the
// current one is full, and the one before it is then dropped, so each
// signature is remembered for ttl to twice ttl at O(1) cost per request.
// A generation filled early (more than maxReplayGeneration signed
// requests in ttl) cuts that short; a replay the cache has forgotten is
// still stored once, as every signed request is published under a dedupe
// key.
type replayCache struct {
	ttl       time.Duration
	mu        sync.Mutex
	cur, prev map[string]struct{}
	since     time.Time // when cur started
}

// maxReplayGeneration caps a generation of the replay cache (two are
// kept: some 30 MB at most).
const maxReplayGeneration = 1 << 18

func newReplayCache(ttl time.Duration) *replayCache {
	return &replayCache{ttl: ttl, cur: map[string]struct{}{}, prev: map[string]struct{}{}}
}

// firstSeen records sig and reports whether it was new.
func (c *replayCache) firstSeen(sig string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if age := now.Sub(c.since); age >= c.ttl || len(c.cur) >= maxReplayGeneration {
		c.prev, c.cur, c.since = c.cur, make(map[string]struct{}, len(c.cur)), now
		if age >= 2*c.ttl {
			// Every signature in cur is older than ttl too.
			clear(c.prev)
		}
	}
	if _, ok := c.cur[sig]; ok {
		return false
	}
	if _, ok := c.prev[sig]; ok {
		return false
	}
	c.cur[sig] = struct{}{}
	return true
}

// forget drops sig, so that it may be used again.
func (c *replayCache) forget(sig string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, sig)
	delete(c.prev, sig)
}
