package detect

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vigil-soc/vigil/event"
	"github.com/vigil-soc/vigil/rules"
)

// TestDefaultBaselineRulesHoldBackUsualRates runs every baseline rule of the
// default pack over two keys that get the same burst: one that has been
// busy for hours at a steady rate below the threshold, and one that was
// quiet. The burst is above the threshold but below factor times the busy
// key's usual rate, so only the quiet key fires: "far above their usual
// rate", not just "above the threshold".
func TestDefaultBaselineRulesHoldBackUsualRates(t *testing.T) {
	all, err := LoadFS(rules.FS, ".", "rules")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range all {
		if r.Baseline == nil {
			continue
		}
		n++
		t.Run(r.ID, func(t *testing.T) {
			window := r.Window.D()
			steady := int(0.8 * float64(r.Threshold))                               // per window, below the threshold
			total := (r.Threshold + int(0.7*r.Baseline.Factor*float64(steady))) / 2 // in the burst's window
			if total <= r.Threshold || float64(total) >= 0.9*r.Baseline.Factor*float64(steady) {
				t.Fatalf("factor %v leaves no burst between the threshold and the usual rate", r.Baseline.Factor)
			}
			start := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
			busyFor := 4 * r.Baseline.Learn.D()
			burstAt := start.Add(busyFor)
			fired := map[string]int{}
			run := func(key string, busy bool) {
				rs := Compile([]*Rule{r})
				engine, m := NewEngine(rs, Options{}), rs.NewMatcher()
				var obs []Observation
				var alerts []event.Alert
				observe := func(at time.Time) {
					ev := eventFor(r, key, at)
					for _, o := range m.Match(&ev, "", obs[:0]) {
						for _, a := range engine.Observe(&o, alerts[:0]) {
							fired[key]++
							if a.At.Before(burstAt) {
								t.Errorf("%s fired at %s, before the burst", key, a.At)
							}
						}
					}
				}
				if busy {
					gap := window / time.Duration(steady)
					for at := start; at.Before(burstAt); at = at.Add(gap) {
						observe(at)
					}
				}
				burst := total
				if busy {
					burst -= steady
				}
				for i := range burst {
					observe(burstAt.Add(time.Duration(i) * window / time.Duration(2*burst)))
				}
			}
			run(keyFor(r, 1), true)
			run(keyFor(r, 2), false)
			if fired[keyFor(r, 1)] != 0 || fired[keyFor(r, 2)] != 1 {
				t.Errorf("%d in a window (%d usual) fired %d times for the busy key, %d for the quiet one; want 0 and 1",
					total, steady, fired[keyFor(r, 1)], fired[keyFor(r, 2)])
			}
		})
	}
	if n == 0 {
		t.Fatal("the default pack has no baseline rule")
	}
}

// keyFor returns the i-th key of r's group_by field.
func keyFor(r *Rule, i int) string {
	switch r.GroupBy {
	case FieldSourceIP, "":
		return fmt.Sprintf("198.51.100.%d", i)
	case FieldCSPDocument:
		return fmt.Sprintf("https://shop.example/page-%d", i)
	case FieldCSPBlockedOrigin:
		return fmt.Sprintf("https://cdn-%d.example", i)
	default:
		return fmt.Sprintf("key-%d", i)
	}
}

// eventFor returns an event r matches, whose group_by field is key (for
// group_by none, each run has an engine of its own).
func eventFor(r *Rule, key string, at time.Time) event.Event {
	ev := event.Event{Source: r.Source, Time: at, Status: 200, BodyBytes: -1, SourceIP: netip.MustParseAddr("192.0.2.1")}
	if len(r.Match.Status) > 0 {
		ev.Status = r.Match.Status[0]
	}
	if len(r.Match.Method) > 0 {
		ev.Method = r.Match.Method[0]
	}
	if len(r.Match.Path) > 0 {
		ev.Path, ev.Target = r.Match.Path[0], r.Match.Path[0]
	}
	if len(r.Match.Action) > 0 {
		ev.Action = r.Match.Action[0]
	}
	if r.Source == event.SourceCSP {
		ev.CSP = &event.CSP{DocumentURI: "https://shop.example/", BlockedOrigin: "https://cdn.example", EffectiveDirective: "script-src-elem"}
	}
	switch r.GroupBy {
	case FieldSourceIP, "":
		ev.SourceIP = netip.MustParseAddr(key)
	case FieldUserName:
		ev.UserName = key
	case FieldUserID:
		ev.UserID = key
	case FieldCSPDocument:
		ev.CSP.DocumentURI = key
	case FieldCSPBlockedOrigin:
		ev.CSP.BlockedOrigin = key
	case FieldCSPDirective:
		ev.CSP.EffectiveDirective = key
	}
	return ev
}
