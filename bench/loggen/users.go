package loggen

import (
	"math"
	"strconv"
	"time"
)

// Ordinary traffic is a population of sessions, each a client loading
// pages: a burst of requests a few milliseconds apart, then a pause. The
// normal stream's ticks (a Poisson process at the configured rate) are
// handed to whichever session is due first, so the overall rate is exact
// while each session keeps its own rhythm. Sessions are added when all are
// waiting and retired without replacement when they fall behind, which
// keeps their number matched to the rate.

// Kinds of session.
const (
	kindBrowser = iota
	kindBot
	kindAPI
	kindStaff
)

const (
	// slack is how far the first session may be off the tick before the
	// population grows or shrinks.
	slack = int64(2 * time.Second)
	// sessionRate is the mean requests per second of one session, used to
	// size the initial population.
	sessionRate = 0.3
	// maxSessions bounds the population (and memory) at very high rates;
	// past it sessions are simply served sooner.
	maxSessions = 50_000
	// maxMisses and maxFails cap an ordinary client's 404s and failed
	// logins in any 60 s, far below the rules' thresholds.
	maxMisses = 4
	maxFails  = 3
)

// step is one planned request of a session.
type step struct {
	method string
	target string
	ref    string
	gap    int64 // ns after the previous step
	status int16
	bytes  int32
}

// session is one visitor's state.
type session struct {
	due      int64 // event time of the next step
	client   int32
	kind     int
	pages    int // pages left before the visitor leaves
	loggedIn bool
	cached   bool // the browser has the build cached: assets answer 304
	ua       string
	proto    string
	page     string // URL of the current page, the referrer of its requests
	q        []step
	qi       int
	misses   [maxMisses]int64 // event seconds of the last 404s, a ring
	mi       int
	fails    [maxFails]int64 // event seconds of the last failed logins
	fi       int
}

// users generates the ordinary traffic.
type users struct {
	g *gen
	h []slot // min-heap on due
}

// slot is a heap entry; it repeats the session's due so that sifting does
// not chase pointers.
type slot struct {
	due int64
	s   *session
}

// newUsers starts a population sized for lines requests over the log.
func newUsers(g *gen, lines int) *users {
	u := &users{g: g}
	rate := float64(lines) / (float64(max(g.span, 1)) / 1e9)
	n := min(max(1, int(math.Ceil(rate/sessionRate))), max(lines, 1), maxSessions)
	for range n {
		u.push(u.start(&session{}, int64(g.rng.Float64()*float64(min(g.span, int64(20*time.Second))))))
	}
	return u
}

// next returns the ordinary request at event time t.
func (u *users) next(t int64) rec {
	if len(u.h) == 0 || u.h[0].due > t+slack && len(u.h) < maxSessions {
		u.push(u.start(&session{}, t))
	}
	s := u.h[0].s
	st := &s.q[s.qi]
	s.qi++
	r := rec{at: t, client: s.client, method: st.method, target: st.target, status: st.status,
		bytes: st.bytes, proto: s.proto, ref: st.ref, ua: s.ua}
	u.limit(s, &r)

	base := max(s.due, t)
	if s.qi == len(s.q) {
		s.pages--
		switch {
		case s.pages > 0:
			u.plan(s)
		case s.due < t-slack && len(u.h) > 1:
			// Behind: too many sessions. Retire this one.
			last := len(u.h) - 1
			u.h[0] = u.h[last]
			u.h = u.h[:last]
			u.down(0)
			return r
		default:
			u.start(s, base)
		}
	}
	s.due = base + s.q[s.qi].gap
	u.h[0].due = s.due
	u.down(0)
	return r
}

// limit keeps an ordinary client's 404s and failed logins rare: past the
// cap, the missing file turns out to exist and the login succeeds.
func (u *users) limit(s *session, r *rec) {
	sec := u.g.sec(r.at)
	switch {
	case r.status == 404:
		if sec-s.misses[s.mi] < 60 {
			r.status, r.bytes = 200, 5120
			return
		}
		s.misses[s.mi] = sec
		s.mi = (s.mi + 1) % maxMisses
	case r.method == "POST" && (r.status == 401 || r.status == 403):
		if sec-s.fails[s.fi] < 60 {
			r.status, r.bytes = 200, 483
			return
		}
		s.fails[s.fi] = sec
		s.fi = (s.fi + 1) % maxFails
	}
}

// start makes s a new visitor, on a new client, arriving at about at, and
// returns it.
func (u *users) start(s *session, at int64) *session {
	g := u.g
	q := s.q[:0]
	*s = session{q: q, due: at}
	for i := range s.misses {
		s.misses[i] = math.MinInt64 / 2
	}
	for i := range s.fails {
		s.fails[i] = math.MinInt64 / 2
	}
	mapped := false
	fam := g.userFamily()
	if fam == addrPublic && g.rng.IntN(30) == 0 {
		mapped = true
	}
	s.client = g.newClient(fam, mapped)
	if g.rng.IntN(20) == 0 {
		// Behind a corporate proxy that adds X-Forwarded-For.
		g.clients[s.client].xff = "10." + itoa(g.rng.IntN(256)) + "." + itoa(g.rng.IntN(256)) + "." + itoa(1+g.rng.IntN(254))
	}
	s.pages = 1 + int(g.rng.ExpFloat64()*11)
	s.proto = "HTTP/1.1"
	switch k := g.rng.IntN(100); {
	case k < 5:
		s.kind, s.ua = kindBot, pick(g, botAgents)
		s.pages *= 3
	case k < 9:
		s.kind, s.ua = kindAPI, pick(g, apiAgents)
	case k < 11:
		s.kind, s.ua, s.loggedIn = kindStaff, pick(g, browserAgents), true
		s.proto = "HTTP/2.0"
	default:
		s.kind, s.ua = kindBrowser, pick(g, browserAgents)
		s.loggedIn = g.rng.IntN(3) == 0
		s.cached = g.rng.IntN(2) == 0
		if g.rng.IntN(10) < 7 {
			s.proto = "HTTP/2.0"
		}
	}
	u.land(s)
	s.q[0].gap = int64(g.rng.ExpFloat64() * 3e9)
	return s
}

// plan queues the steps of the visitor's next page, after a pause.
func (u *users) plan(s *session) {
	s.q, s.qi = s.q[:0], 0
	switch s.kind {
	case kindBot:
		u.crawl(s)
	case kindAPI:
		u.apiCall(s)
	case kindStaff:
		u.adminPage(s)
	default:
		u.navigate(s)
	}
	think := 1e9 + u.g.rng.ExpFloat64()*12e9
	if s.kind == kindBot || s.kind == kindAPI {
		think = 0.5e9 + u.g.rng.ExpFloat64()*4e9
	}
	s.q[0].gap = int64(min(think, 120e9))
}

// add queues one step gapMs (about) milliseconds after the previous one.
func (u *users) add(s *session, method, target string, status, size int, ref string, gapMs int) {
	gap := int64(0)
	if gapMs > 0 {
		gap = int64(1+u.g.rng.IntN(2*gapMs)) * 1e6
	}
	s.q = append(s.q, step{method: method, target: target, ref: ref, gap: gap, status: int16(status), bytes: int32(size)})
}

// land queues a first visit: index.html, the build, then the data.
func (u *users) land(s *session) {
	g := u.g
	switch s.kind {
	case kindBot:
		u.add(s, "GET", "/robots.txt", 200, 67, "", 0)
		return
	case kindAPI:
		u.add(s, "POST", "/api/token/", 200, 483, "", 0)
		return
	case kindStaff:
		s.page = origin + "/admin/login/?next=/admin/"
		u.add(s, "GET", "/admin/", 302, 0, "", 0)
		u.add(s, "GET", "/admin/login/?next=/admin/", 200, 4187, "", 150)
		u.assets(s, adminAssets[:3], 20)
		if g.rng.IntN(12) == 0 {
			// A mistyped password: Django's admin answers 200 with the form.
			u.add(s, "POST", "/admin/login/?next=/admin/", 200, 4392, s.page, 4000)
		}
		u.add(s, "POST", "/admin/login/?next=/admin/", 302, 0, s.page, 4000)
		s.page = origin + "/admin/"
		u.add(s, "GET", "/admin/", 200, 9841, origin+"/admin/login/?next=/admin/", 100)
		return
	}
	route := pick(g, spaRoutes)
	if route == "/products/new/" {
		route = "/products/" + itoa(1+g.rng.IntN(4000)) + "/"
	}
	s.page = origin + route
	u.add(s, "GET", route, 200, indexSize, pick(g, externalReferrers), 0)
	u.assets(s, staticAssets[:2+g.rng.IntN(len(staticAssets)-1)], 15)
	u.assets(s, shellAssets[:g.rng.IntN(len(shellAssets)+1)], 30)
	if g.rng.IntN(40) == 0 {
		u.add(s, "GET", pick(g, staleAssets), 404, 153, "", 50)
	}
	if s.loggedIn {
		u.add(s, "GET", "/api/v1/me/", 200, 412, s.page, 80)
	} else {
		u.add(s, "GET", "/api/v1/me/", 401, 58, s.page, 80)
	}
	u.routeData(s, route)
}

// assets queues static files, answered 304 when the browser has them.
func (u *users) assets(s *session, as []asset, gapMs int) {
	for _, a := range as {
		if s.cached {
			u.add(s, "GET", a.path, 304, 0, s.page, gapMs)
		} else {
			u.add(s, "GET", a.path, 200, int(a.size), s.page, gapMs)
		}
	}
}

// images queues n product images.
func (u *users) images(s *session, n int) {
	g := u.g
	for range n {
		id := 1 + g.rng.IntN(4000)
		p := "/media/products/" + itoa(id) + "/" + pick(g, productSlugs) + "-" + itoa(1+g.rng.IntN(4)) + ".jpg"
		if s.cached && g.rng.IntN(3) == 0 {
			u.add(s, "GET", p, 304, 0, s.page, 20)
			continue
		}
		u.add(s, "GET", p, 200, 18000+g.rng.IntN(160000), s.page, 20)
	}
}

// routeData queues the API calls a front-end route makes.
func (u *users) routeData(s *session, route string) {
	g := u.g
	switch {
	case route == "/" || route == "/products/":
		u.add(s, "GET", "/api/v1/products/?page="+itoa(1+g.rng.IntN(3)), 200, 4000+g.rng.IntN(9000), s.page, 120)
		u.images(s, 2+g.rng.IntN(5))
	case len(route) > len("/products/"):
		id := route[len("/products/") : len(route)-1]
		u.add(s, "GET", "/api/v1/products/"+id+"/", 200, 1200+g.rng.IntN(3000), s.page, 120)
		u.images(s, 1+g.rng.IntN(3))
	case route == "/cart/":
		u.add(s, "GET", "/api/v1/cart/", 200, 300+g.rng.IntN(2000), s.page, 120)
	case route == "/orders/":
		if s.loggedIn {
			u.add(s, "GET", "/api/v1/orders/?page=1", 200, 900+g.rng.IntN(6000), s.page, 120)
		} else {
			u.add(s, "GET", "/api/v1/orders/?page=1", 401, 58, s.page, 120)
		}
	case route == "/account/":
		u.add(s, "GET", "/api/v1/account/", 200, 640, s.page, 120)
	case route == "/help/":
		u.add(s, "GET", "/api/v1/pages/help/", 200, 5400, s.page, 120)
	default: // "/login": the form, nothing to fetch
		u.add(s, "GET", "/api/v1/csrf/", 200, 52, s.page, 120)
	}
}

// navigate queues one in-app navigation of a browser visitor.
func (u *users) navigate(s *session) {
	g := u.g
	k := g.rng.IntN(100)
	switch {
	case k < 25:
		s.page = origin + "/products/?page=" + itoa(1+g.rng.IntN(20))
		q := "/api/v1/products/?page=" + itoa(1+g.rng.IntN(20))
		if g.rng.IntN(2) == 0 {
			q += "&category=" + pick(g, categories)
		}
		u.add(s, "GET", q, 200, 4000+g.rng.IntN(9000), s.page, 0)
		u.images(s, 2+g.rng.IntN(5))
	case k < 45:
		id := itoa(1 + g.rng.IntN(4000))
		s.page = origin + "/products/" + id + "/"
		if g.rng.IntN(50) == 0 {
			// A product taken off the shop since the link was made.
			u.add(s, "GET", "/api/v1/products/"+id+"/", 404, 23, s.page, 0)
			break
		}
		u.add(s, "GET", "/api/v1/products/"+id+"/", 200, 1200+g.rng.IntN(3000), s.page, 0)
		u.add(s, "GET", "/api/v1/products/"+id+"/reviews/?page=1", 200, 200+g.rng.IntN(5000), s.page, 60)
		u.images(s, 1+g.rng.IntN(3))
	case k < 55:
		w := pick(g, searchWords)
		s.page = origin + "/products/?search=" + w
		u.add(s, "GET", "/api/v1/products/?search="+w, 200, 800+g.rng.IntN(9000), s.page, 0)
	case k < 63:
		u.add(s, "POST", "/api/v1/cart/items/", 201, 180+g.rng.IntN(300), s.page, 0)
		u.add(s, "GET", "/api/v1/cart/", 200, 300+g.rng.IntN(2000), s.page, 100)
	case k < 73:
		u.add(s, "GET", "/api/v1/notifications/?unread=1", 200, 40+g.rng.IntN(800), s.page, 0)
	case k < 80 && !s.loggedIn:
		s.page = origin + "/login"
		if g.rng.IntN(8) == 0 {
			u.add(s, "POST", "/api/token/", 401, 63, s.page, 0)
			u.add(s, "POST", "/api/token/", 200, 483, s.page, 6000)
		} else {
			u.add(s, "POST", "/api/token/", 200, 483, s.page, 0)
		}
		s.loggedIn = true
	case k < 80:
		u.add(s, "POST", "/api/token/refresh/", 200, 241, s.page, 0)
	case k < 87:
		s.page = origin + "/orders/"
		if !s.loggedIn {
			u.add(s, "GET", "/api/v1/orders/?page=1", 401, 58, s.page, 0)
			break
		}
		u.add(s, "GET", "/api/v1/orders/?page=1", 200, 900+g.rng.IntN(6000), s.page, 0)
		id := itoa(10000 + g.rng.IntN(90000))
		if g.rng.IntN(30) == 0 {
			u.add(s, "GET", "/api/v1/orders/"+id+"/", 404, 23, s.page, 900)
		} else {
			u.add(s, "GET", "/api/v1/orders/"+id+"/", 200, 700+g.rng.IntN(2000), s.page, 900)
		}
	case k < 90:
		u.add(s, "POST", "/api/v1/orders/", 201, 512+g.rng.IntN(400), s.page, 0)
	case k < 93:
		s.page = origin + "/account/"
		u.add(s, "GET", "/api/v1/account/", 200, 640, s.page, 0)
		if g.rng.IntN(3) == 0 {
			u.add(s, "PATCH", "/api/v1/account/", 200, 640, s.page, 5000)
		}
	case k < 95:
		// An old bookmark without the trailing slash.
		u.add(s, "GET", "/api/v1/orders", 301, 0, s.page, 0)
		u.add(s, "GET", "/api/v1/orders/", 200, 900+g.rng.IntN(6000), s.page, 30)
	case k < 97:
		u.add(s, "GET", pick(g, staleAssets), 404, 153, s.page, 0)
	case k < 98:
		u.add(s, "POST", "/api/auth/logout/", 204, 0, s.page, 0)
		s.loggedIn = false
	default:
		u.add(s, "GET", "/api/v1/products/?category="+pick(g, categories)+"&ordering=-price", 200, 3000+g.rng.IntN(6000), s.page, 0)
	}
}

// crawl queues one crawler fetch.
func (u *users) crawl(s *session) {
	g := u.g
	switch k := g.rng.IntN(20); {
	case k == 0:
		u.add(s, "GET", "/sitemap.xml", 200, 38211, "", 0)
	case k < 4:
		u.add(s, "GET", pick(g, spaRoutes), 200, indexSize, "", 0)
	default:
		u.add(s, "GET", "/products/"+itoa(1+g.rng.IntN(4000))+"/", 200, indexSize, "", 0)
	}
}

// apiCall queues one call of an API client.
func (u *users) apiCall(s *session) {
	g := u.g
	switch k := g.rng.IntN(10); {
	case k < 5:
		u.add(s, "GET", "/api/v1/products/?page="+itoa(1+g.rng.IntN(40)), 200, 4000+g.rng.IntN(9000), "", 0)
	case k < 7:
		u.add(s, "GET", "/api/v1/orders/?page=1&status=pending", 200, 900+g.rng.IntN(6000), "", 0)
	case k < 8:
		u.add(s, "POST", "/api/token/refresh/", 200, 241, "", 0)
	default:
		u.add(s, "GET", "/api/v1/products/"+itoa(1+g.rng.IntN(4000))+"/", 200, 1200+g.rng.IntN(3000), "", 0)
	}
}

// adminPage queues one Django admin page of a staff member.
func (u *users) adminPage(s *session) {
	g := u.g
	ref := s.page
	id := itoa(10000 + g.rng.IntN(90000))
	switch k := g.rng.IntN(4); {
	case k == 0:
		s.page = origin + "/admin/shop/order/?status__exact=pending"
		u.add(s, "GET", "/admin/shop/order/?status__exact=pending", 200, 30000+g.rng.IntN(20000), ref, 0)
	case k == 1:
		s.page = origin + "/admin/shop/order/" + id + "/change/"
		u.add(s, "GET", "/admin/shop/order/"+id+"/change/", 200, 18000+g.rng.IntN(8000), ref, 0)
		u.add(s, "GET", "/admin/jsi18n/", 200, 3342, s.page, 40)
	case k == 2:
		u.add(s, "POST", "/admin/shop/order/"+id+"/change/", 302, 0, ref, 0)
		s.page = origin + "/admin/shop/order/"
		u.add(s, "GET", "/admin/shop/order/", 200, 30000+g.rng.IntN(20000), ref, 90)
	default:
		s.page = origin + "/admin/shop/product/"
		u.add(s, "GET", "/admin/shop/product/?q="+pick(g, productSlugs), 200, 25000+g.rng.IntN(20000), ref, 0)
	}
	u.assets(s, adminAssets[3:], 15)
}

// Heap of sessions on due.

func (u *users) push(s *session) {
	u.h = append(u.h, slot{s.due, s})
	u.up(len(u.h) - 1)
}

func (u *users) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if u.h[p].due <= u.h[i].due {
			return
		}
		u.h[p], u.h[i] = u.h[i], u.h[p]
		i = p
	}
}

func (u *users) down(i int) {
	n := len(u.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && u.h[r].due < u.h[l].due {
			m = r
		}
		if u.h[i].due <= u.h[m].due {
			return
		}
		u.h[i], u.h[m] = u.h[m], u.h[i]
		i = m
	}
}

// pick returns a random element of s.
func pick(g *gen, s []string) string { return s[g.rng.IntN(len(s))] }

// itoa is strconv.Itoa, short for the many paths built with it.
func itoa(i int) string { return strconv.Itoa(i) }
