package loggen

import (
	"fmt"
	"time"
)

// scanTool is a directory scanner as it shows in the log.
type scanTool struct {
	name string
	ua   string // "" for nikto, whose agent names the test it runs
}

var scanTools = []scanTool{
	{"gobuster", "gobuster/3.6"},
	{"ffuf", "Fuzz Faster U Fool v2.1.0-dev"},
	{"dirb", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"},
	{"nikto", ""},
	{"feroxbuster", "feroxbuster/2.10.4"},
	{"dirsearch", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0.4472.124 Safari/537.36"},
	{"wfuzz", "Wfuzz/3.1.0"},
}

// internalTools are the vulnerability scanners of the site's own network.
var internalTools = []scanTool{
	{"nessus", "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)"},
	{"openvas", "Mozilla/5.0 [en] (X11, U; OpenVAS-VT 22.4.1)"},
	{"nuclei", "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)"},
}

// agent returns the User-Agent of the tool's k-th request.
func (t scanTool) agent(k int) string {
	if t.ua == "" {
		return fmt.Sprintf("Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:%06d)", 1+k)
	}
	return t.ua
}

// planScanner plans a directory scanner: a burst of wordlist paths, most
// answered 404, fast (20-300/s) or, one in seven, slow but still far over
// the threshold (2-5/s); one in five (if the log crosses a minute
// boundary) sends 30-36 paths in the last 20 s of a minute and 30-36 in
// the first 20 s of the next, which only a sliding window catches.
// Allow-listed scanners come from 10/8 or 192.168/16.
func (g *gen) planScanner(i int, a *actor, allow bool, maxLines int) {
	tools := scanTools
	if allow {
		tools = internalTools
		a.client = g.newClient(addrPrivate, false)
	} else {
		a.client = g.actorClient(i == 1, i == 2)
	}
	a.Expect = ruleScan
	tool := tools[g.rng.IntN(len(tools))]

	if !allow && i%5 == 3 {
		if b, ok := g.minuteBoundary(21 * second); ok {
			n1, n2 := 30+g.rng.IntN(7), 30+g.rng.IntN(7)
			paths := g.missing(n1 + n2)
			for k, p := range paths {
				at := g.spread(b-20*second, 19*second, k, n1)
				if k >= n1 {
					at = g.spread(b, 19*second, k-n1, n2)
				}
				_, size := scanAnswer(p)
				g.req(a, at, "GET", p, "HTTP/1.1", 404, size, "", tool.agent(k))
			}
			a.Note = fmt.Sprintf("%s, %d paths in the last 20s of a minute and %d in the first 20s of the next", tool.name, n1, n2)
			return
		}
	}

	n := max(150, min(g.logUniform(150, 3000), maxLines))
	var dur int64
	if i%7 == 6 {
		dur = min(int64(float64(n)/(2+3*g.rng.Float64())*1e9), 300*second)
	} else {
		dur = int64(float64(n) / (20 + 280*g.rng.Float64()) * 1e9)
	}
	start, dur := g.window(dur)
	if tool.name == "gobuster" {
		// The wildcard check: a random path, to learn what 404 looks like.
		uuid := fmt.Sprintf("/%08x-%04x-%04x-%04x-%012x", g.rng.Uint32(), g.rng.IntN(1<<16), g.rng.IntN(1<<16), g.rng.IntN(1<<16), g.rng.Int64N(1<<48))
		g.req(a, start, "GET", uuid, "HTTP/1.1", 404, 179, "", tool.agent(0))
		n--
	}
	wl := wordlist()
	off := g.rng.IntN(len(wl))
	for k := range n {
		p := wl[(off+k)%len(wl)]
		status, size := scanAnswer(p)
		g.req(a, g.spread(start, dur, k, n), "GET", p, "HTTP/1.1", status, size, "", tool.agent(k))
	}
	a.Note = fmt.Sprintf("%s, %d paths in %v", tool.name, n, time.Duration(dur).Round(100*time.Millisecond))
}

// planSlowScanner plans a scanner that stays under the 404 threshold in
// every 60 s window: 40 distinct paths a minute for up to ten minutes, 49
// distinct paths in under a minute then the same 49 again, or two bursts
// of 45 distinct paths more than 75 s apart.
func (g *gen) planSlowScanner(i int, a *actor) {
	a.client = g.actorClient(false, false)
	tool := scanTools[g.rng.IntN(len(scanTools))]
	variant := i % 3
	if variant == 0 && g.span < 90*second || variant == 2 && g.span < 120*second {
		variant = 1
	}
	switch variant {
	case 0:
		start, dur := g.window(min(600*second, g.span-5*second))
		step := 1500 * time.Millisecond
		n := int(dur / int64(step))
		for k, p := range g.missing(n) {
			at := start + int64(k)*int64(step) + g.rng.Int64N(int64(100*time.Millisecond))
			_, size := scanAnswer(p)
			g.req(a, at, "GET", p, "HTTP/1.1", 404, size, "", tool.agent(k))
		}
		a.Note = fmt.Sprintf("%s, 40 distinct 404s a minute for %v", tool.name, time.Duration(dur).Round(time.Second))
	case 1:
		pass := min(45*second, g.span*4/10)
		pause := min(5*second, g.span/10)
		start := int64(g.rng.Float64() * float64(g.span-2*pass-pause))
		paths := g.missing(49)
		for round := range 2 {
			for k, p := range paths {
				at := g.spread(start+int64(round)*(pass+pause), pass, k, len(paths))
				_, size := scanAnswer(p)
				g.req(a, at, "GET", p, "HTTP/1.1", 404, size, "", tool.agent(round*49+k))
			}
		}
		a.Note = fmt.Sprintf("%s, 49 distinct 404s in %v, then the same 49 again", tool.name, time.Duration(pass).Round(time.Second))
	default:
		burst := g.seconds(8, 15)
		gap := g.seconds(75, 105)
		start := int64(g.rng.Float64() * float64(g.span-2*burst-gap))
		paths := g.missing(90)
		for k, p := range paths {
			at := g.spread(start, burst, k, 45)
			if k >= 45 {
				at = g.spread(start+burst+gap, burst, k-45, 45)
			}
			_, size := scanAnswer(p)
			g.req(a, at, "GET", p, "HTTP/1.1", 404, size, "", tool.agent(k))
		}
		a.Note = fmt.Sprintf("%s, two bursts of 45 distinct 404s %v apart", tool.name, time.Duration(gap).Round(time.Second))
	}
}
