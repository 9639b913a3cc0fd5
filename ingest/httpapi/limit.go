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
// cannot be sent again.
type replayCache struct {
	ttl  time.Duration
	mu   sync.Mutex
	seen map[string]time.Time
}

func newReplayCache(ttl time.Duration) *replayCache {
	return &replayCache{ttl: ttl, seen: map[string]time.Time{}}
}

// firstSeen records sig and reports whether it was new.
func (c *replayCache) firstSeen(sig string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) >= maxBuckets {
		for k, t := range c.seen {
			if now.Sub(t) > c.ttl {
				delete(c.seen, k)
			}
		}
	}
	if t, ok := c.seen[sig]; ok && now.Sub(t) <= c.ttl {
		return false
	}
	c.seen[sig] = now
	return true
}

// forget drops sig, so that it may be used again.
func (c *replayCache) forget(sig string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.seen, sig)
}
