package loggen

import (
	"fmt"
	"time"
)

var bruteAgents = []string{
	"python-requests/2.31.0",
	"Mozilla/5.0 (Hydra)",
	"curl/8.5.0",
	"Go-http-client/1.1",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.93 Safari/537.36",
}

// attackAgents are the agents of each payload class's attackers.
var attackAgents = [...][]string{
	classTraversal: {"curl/8.5.0", "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)", "python-requests/2.28.1"},
	classSQLi:      {"sqlmap/1.8.4#stable (https://sqlmap.org)", "sqlmap/1.7.2#stable (https://sqlmap.org)", "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"},
	classXSS:       {"Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "XSStrike/3.1.5"},
}

var classNames = [...]string{"path traversal", "SQL injection", "script injection"}

// benignTargets are what attackers fetch before they try anything, and
// their sizes.
var benignTargets = []asset{{"/", indexSize}, {"/robots.txt", 67}, {"/api/v1/products/?page=1", 8312}, {"/static/js/main.8f3c2a1e.js", 534211}}

// planBruteForcer plans 25-200 failed login POSTs to one login endpoint
// within 8-50 s: 401 from the API endpoints (a tenth 403), 403 (CSRF) from
// the form endpoints, some with a query string on the exact path. One in
// three finally gets in.
func (g *gen) planBruteForcer(i int, a *actor) {
	a.client = g.actorClient(i == 1, i == 3)
	a.Expect = ruleBrute
	ep := loginPaths[i%len(loginPaths)]
	target := ep
	if i%4 == 2 {
		target = ep + "?next=/account/"
	}
	form := ep == "/accounts/login/" || ep == "/admin/login/"
	n := g.logUniform(25, 200)
	start, dur := g.window(g.seconds(8, 50))
	ua := pick(g, bruteAgents)
	if form {
		g.req(a, start, "GET", target, "HTTP/1.1", 200, 3921, "", ua)
	}
	for k := range n {
		status, size := 401, 63
		switch {
		case form:
			status, size = 403, 2569
		case g.rng.IntN(10) == 0:
			status, size = 403, 58
		}
		g.req(a, g.spread(start, dur, k, n), "POST", target, "HTTP/1.1", status, size, "", ua)
	}
	if i%3 == 0 {
		if form {
			g.req(a, start+dur, "POST", target, "HTTP/1.1", 302, 0, "", ua)
		} else {
			g.req(a, start+dur, "POST", target, "HTTP/1.1", 200, 483, "", ua)
		}
	}
	a.Note = fmt.Sprintf("%d failed POSTs to %s in %v", n, ep, time.Duration(dur).Round(time.Second))
}

// planAttacker plans a client that fetches a page or two, then sends 3-10
// payloads of one class (raw, single and double percent-encoded in turn)
// over 5-120 s: too few requests for any count rule.
func (g *gen) planAttacker(i int, a *actor) {
	class := i % 3
	a.client = g.actorClient(i == 4, i == 2)
	a.Expect = classRule[class]
	n := 3 + g.rng.IntN(8)
	benign := 1 + g.rng.IntN(3)
	start, dur := g.window(g.seconds(5, 120))
	ua := pick(g, attackAgents[class])
	total := benign + n
	for k := range total {
		at := g.spread(start, dur, k, total)
		if k < benign {
			b := benignTargets[g.rng.IntN(len(benignTargets))]
			g.req(a, at, "GET", b.path, "HTTP/1.1", 200, int(b.size), "", ua)
			continue
		}
		target, status, size := g.attackTarget(class, (k-benign)%3)
		g.req(a, at, "GET", target, "HTTP/1.1", status, size, "", ua)
	}
	a.Note = fmt.Sprintf("%d %s payloads over %v", n, classNames[class], time.Duration(dur).Round(time.Second))
}
