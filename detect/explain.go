package detect

import (
	"net/netip"
	"time"
)

// KeyInfo is what one rule knows about one key, for `vigil explain`.
type KeyInfo struct {
	Rule      string    `json:"rule"`
	KeyField  string    `json:"key_field"`
	Tracked   bool      `json:"tracked"`              // the rule has a window for the key now
	Count     int       `json:"count"`                // entries in the window now (events or distinct values)
	Threshold int       `json:"threshold"`            // what firing takes
	Window    string    `json:"window"`               // the rule's window
	LastSeen  time.Time `json:"last_seen,omitzero"`   // newest event counted
	QuietTill time.Time `json:"quiet_until,omitzero"` // the key fired and is in cooldown until then
	FiredAt   time.Time `json:"fired_at,omitzero"`    // when a followed rule last fired for the key
}

// Explain reports, for every rule that groups by a field key could be (an
// IP for source.ip rules, text for the others), what the engine holds for
// it. Like Observe it must not run concurrently with other engine calls.
func (e *Engine) Explain(key string) []KeyInfo {
	ip, ipErr := netip.ParseAddr(key)
	var out []KeyInfo
	for _, c := range e.rs.rules {
		var k Key
		switch c.groupBy {
		case fieldNone:
			if key != "global" {
				continue
			}
		case fieldSourceIP:
			if ipErr != nil {
				continue
			}
			k = ip.Unmap().As16()
		default:
			if ipErr == nil && c.groupBy != fieldUserName && c.groupBy != fieldUserID {
				continue
			}
			k = e.rs.hashKey(key)
		}
		tk := tableKey{rule: c.index, key: k}
		info := KeyInfo{Rule: c.ID, KeyField: c.GroupBy, Threshold: c.Threshold, Window: time.Duration(c.window).String()}
		if idx, ok := e.table[tk]; ok {
			s := &e.states[idx]
			info.Tracked, info.LastSeen = true, time.Unix(0, s.newest).UTC()
			info.Count = len(s.entries)
			if s.base != nil {
				info.Count = 0
				for _, n := range s.base.buckets {
					info.Count += int(n)
				}
				if s.base.quietUntil > 0 {
					info.QuietTill = time.Unix(0, s.base.quietUntil).UTC()
				}
			}
		}
		if until, ok := e.quiet[tk]; ok {
			info.QuietTill = time.Unix(0, until).UTC()
		}
		if at, ok := e.fired[tk]; ok {
			info.FiredAt = time.Unix(0, at).UTC()
		}
		if info.Tracked || !info.QuietTill.IsZero() || !info.FiredAt.IsZero() {
			out = append(out, info)
		}
	}
	return out
}
