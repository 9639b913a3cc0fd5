package detect

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/rules"
)

func packEngine(b *testing.B) (*Engine, *Matcher) {
	rs, err := LoadFS(rules.FS, ".", "rules")
	if err != nil {
		b.Fatal(err)
	}
	set := Compile(rs)
	return NewEngine(set, Options{}), set.NewMatcher()
}

// BenchmarkMemoryPerKey reports the heap the engine holds per tracked key:
// 200,000 clients each with one 404 (the common shape: most clients that hit
// a rule at all hit it once or twice), with the default pack.
func BenchmarkMemoryPerKey(b *testing.B) {
	const keys = 200_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e, m := packEngine(b)
		var obs []Observation
		var alerts []event.Alert
		t0 := time.Now()
		for i := range keys {
			ip := netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)})
			ev := event.Event{Source: event.SourceAccess, Time: t0.Add(time.Duration(i) * time.Microsecond), SourceIP: ip,
				Method: "GET", Path: "/missing", Target: "/missing", Status: 404}
			obs = m.Match(&ev, "", obs[:0])
			for j := range obs {
				alerts = e.Observe(&obs[j], alerts[:0])
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := e.Stats().Keys.Load(); got != keys {
			b.Fatalf("tracking %d keys, want %d", got, keys)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/keys, "bytes/key")
		runtime.KeepAlive(e)
	}
}

// BenchmarkObserve is the engine's cost per matching event: a mix of many
// clients with a few 404s each and scanners.
func BenchmarkObserve(b *testing.B) {
	e, m := packEngine(b)
	var evs []event.Event
	t0 := time.Now()
	for i := range 100_000 {
		ip := netip.AddrFrom4([4]byte{100, 64, byte(i % 5000 >> 8), byte(i % 5000)})
		evs = append(evs, event.Event{Source: event.SourceAccess, Time: t0.Add(time.Duration(i) * time.Millisecond), SourceIP: ip,
			Method: "GET", Path: fmt.Sprintf("/p/%d", i%37), Target: "/p", Status: 404})
	}
	var obs []Observation
	var alerts []event.Alert
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := &evs[i%len(evs)]
		i++
		ev.Time = ev.Time.Add(100 * time.Second)
		obs = m.Match(ev, "", obs[:0])
		for j := range obs {
			alerts = e.Observe(&obs[j], alerts[:0])
		}
	}
}
