package loggen

import (
	"fmt"
	"time"
)

// decoys are clients that look bad and must not fire: each stays clear of
// a rule's threshold, window or exact conditions. Decoy i is variant
// i%len(decoys); a variant needing more log than there is falls through to
// the next.
var decoys = []struct {
	minSpan int64 // least log span the variant needs
	plan    func(g *gen, a *actor) string
}{
	{0, (*gen).decoySamePath},
	{0, (*gen).decoyNineteenFails},
	{0, (*gen).decoySlowFails},
	{0, (*gen).decoyGetLogin},
	{0, (*gen).decoyHealthCheck},
	{0, (*gen).decoyQueryVariants},
	{0, (*gen).decoyRefreshLoop},
	{0, (*gen).decoyLoadTest},
	{90 * second, (*gen).decoyLinkChecker},
	{0, (*gen).decoySplitFails},
	{0, (*gen).decoyThrottled},
}

// planDecoy plans decoy i on a client of its own.
func (g *gen) planDecoy(i int, a *actor) {
	a.client = g.actorClient(false, i%10 == 4)
	for k := range len(decoys) {
		d := decoys[(i+k)%len(decoys)]
		if g.span >= d.minSpan {
			a.Note = d.plan(g, a)
			return
		}
	}
}

// decoySamePath: a service worker retrying one stale chunk, 300 times in a
// minute: one distinct path.
func (g *gen) decoySamePath(a *actor) string {
	start, dur := g.window(55 * second)
	ua := pick(g, browserAgents)
	for k := range 300 {
		g.req(a, g.spread(start, dur, k, 300), "GET", "/static/js/787.1d9e0c3a.chunk.js", "HTTP/2.0", 404, 153, origin+"/", ua)
	}
	return "one missing path 300 times in a minute"
}

// decoyNineteenFails: 19 failed logins in under a minute, one short.
func (g *gen) decoyNineteenFails(a *actor) string {
	start, dur := g.window(g.seconds(20, 50))
	ua := pick(g, browserAgents)
	for k := range 19 {
		g.req(a, g.spread(start, dur, k, 19), "POST", "/api/token/", "HTTP/2.0", 401, 63, origin+"/login", ua)
	}
	return "19 failed logins in under a minute"
}

// decoySlowFails: 25 failed logins 12 s apart (closer in a short log, but
// never 14 in a minute).
func (g *gen) decoySlowFails(a *actor) string {
	gap := max(5*second, min(12*second, g.span/26))
	n := int(min(25, g.span*9/10/gap))
	start, _ := g.window(int64(n) * gap)
	ep := pick(g, loginPaths)
	for k := range n {
		g.req(a, start+int64(k)*gap, "POST", ep, "HTTP/1.1", 401, 63, "", "python-requests/2.31.0")
	}
	return fmt.Sprintf("%d failed logins to %s, %v apart", n, ep, time.Duration(gap))
}

// decoyGetLogin: 40 GETs (not POSTs) of /login answered 401, as behind a
// basic-auth gate with a stale password.
func (g *gen) decoyGetLogin(a *actor) string {
	start, dur := g.window(40 * second)
	for k := range 40 {
		g.req(a, g.spread(start, dur, k, 40), "GET", "/login", "HTTP/1.1", 401, 179, "", "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)")
	}
	return "40 GETs of /login answered 401 in 40s"
}

// decoyHealthCheck: a load balancer probing a health path that is not
// there, every second for the whole log.
func (g *gen) decoyHealthCheck(a *actor) string {
	off := g.rng.Int64N(second)
	for at := off; at < g.span; at += second {
		g.req(a, at, "GET", "/healthz", "HTTP/1.1", 404, 179, "", "kube-probe/1.29")
	}
	return "GET /healthz answered 404 every second"
}

// decoyQueryVariants: 150 404s in 50 s, every target different but all
// on one path: an app still calling a removed search API.
func (g *gen) decoyQueryVariants(a *actor) string {
	start, dur := g.window(50 * second)
	for k := range 150 {
		t := "/api/v1/search/?q=" + pick(g, searchWords) + "&page=" + itoa(1+k)
		g.req(a, g.spread(start, dur, k, 150), "GET", t, "HTTP/1.1", 404, 23, "", "ShopApp/2.9.0 (Android 11; SM-A505F) okhttp/4.9.3")
	}
	return "150 different queries on one missing path in 50s"
}

// decoyRefreshLoop: an app retrying an expired refresh token: 40 POSTs
// answered 401 in 40 s, but /api/token/refresh/ is not a login endpoint.
func (g *gen) decoyRefreshLoop(a *actor) string {
	start, dur := g.window(40 * second)
	for k := range 40 {
		g.req(a, g.spread(start, dur, k, 40), "POST", "/api/token/refresh/", "HTTP/1.1", 401, 63, "", "ShopApp/3.1.9 CFNetwork/1494.0.7 Darwin/23.4.0")
	}
	return "40 POSTs to /api/token/refresh/ answered 401 in 40s"
}

// decoyLoadTest: a load test logging in 60 times in 30 s, successfully.
func (g *gen) decoyLoadTest(a *actor) string {
	start, dur := g.window(30 * second)
	for k := range 60 {
		g.req(a, g.spread(start, dur, k, 60), "POST", "/api/token/", "HTTP/1.1", 200, 483, "", "k6/0.50.0 (https://k6.io/)")
	}
	return "60 successful logins in 30s"
}

// decoyLinkChecker: an SEO crawler finding 35 broken image links a minute
// among pages that exist, for up to three minutes.
func (g *gen) decoyLinkChecker(a *actor) string {
	start, dur := g.window(180 * second)
	n := int(dur / (60 * second / 35))
	ua := "Screaming Frog SEO Spider/19.8"
	for k := range n {
		at := start + int64(k)*(60*second/35)
		p := "/media/products/" + itoa(4001+g.rng.IntN(9000)) + "/" + pick(g, productSlugs) + "-" + itoa(k) + ".jpg"
		g.req(a, at, "GET", p, "HTTP/1.1", 404, 153, "", ua)
		g.req(a, at+second/2, "GET", "/products/"+itoa(1+g.rng.IntN(4000))+"/", "HTTP/1.1", 200, indexSize, "", ua)
	}
	return fmt.Sprintf("35 distinct broken links a minute for %v", time.Duration(dur).Round(time.Second))
}

// decoySplitFails: 10 and 9 failed logins on two login endpoints within a
// minute: 19 either way they are counted.
func (g *gen) decoySplitFails(a *actor) string {
	start, dur := g.window(g.seconds(20, 50))
	for k := range 19 {
		ep := "/api/auth/login/"
		if k%2 == 1 {
			ep = "/login"
		}
		g.req(a, g.spread(start, dur, k, 19), "POST", ep, "HTTP/1.1", 401, 63, "", "curl/8.5.0")
	}
	return "10 + 9 failed logins on two login endpoints in under a minute"
}

// decoyThrottled: a client throttled by the app: 5 failures, then 429s.
func (g *gen) decoyThrottled(a *actor) string {
	start, dur := g.window(30 * second)
	for k := range 60 {
		status, size := 401, 63
		if k >= 5 {
			status, size = 429, 72
		}
		g.req(a, g.spread(start, dur, k, 60), "POST", "/api/token/", "HTTP/1.1", status, size, "", "python-requests/2.31.0")
	}
	return "60 login POSTs in 30s, throttled (429) after 5 failures"
}
