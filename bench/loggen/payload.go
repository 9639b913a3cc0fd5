package loggen

import "strings"

// Payload classes; attacker i uses class i%3.
const (
	classTraversal = iota
	classSQLi
	classXSS
)

// classRule is the rule each payload class is meant to fire.
var classRule = [...]string{ruleTraversal, ruleSQLi, ruleXSS}

// Encoding levels of a payload: as typed, percent-encoded once, twice.
const (
	levelRaw = iota
	levelSingle
	levelDouble
)

// spot is where a payload goes: appended to prefix, in the query or in the
// path (then followed by suffix).
type spot struct {
	prefix  string
	inQuery bool
	suffix  string
}

var traversalSpots = []spot{
	{"/static/", false, ""},
	{"/media/products/", false, ""},
	{"/", false, ""},
	{"/api/v1/files/?path=", true, ""},
	{"/download/?file=", true, ""},
	{"/api/v1/products/?image=", true, ""},
}

var traversalFiles = []string{"etc/passwd", "etc/shadow", "etc/hosts", "proc/self/environ", "app/.env", "windows/win.ini"}

var sqliPayloads = []string{
	"1' OR '1'='1",
	"1' OR '1'='1' -- -",
	"' UNION SELECT username,password FROM auth_user--",
	"1 UNION ALL SELECT NULL,NULL,NULL,version()",
	"1 AND SLEEP(5)",
	"1' AND (SELECT 4242 FROM (SELECT(SLEEP(5)))a)-- x",
	"1 AND BENCHMARK(5000000,MD5(0x41))",
	"-1 UNION SELECT table_name FROM information_schema.tables",
	"admin'--",
	"' OR 1=1-- -",
}

var sqliSpots = []spot{
	{"/api/v1/products/?id=", true, ""},
	{"/api/v1/products/?search=", true, ""},
	{"/api/v1/orders/?status=", true, ""},
	{"/api/v1/products/?category=shoes&ordering=", true, ""},
	{"/api/v1/products/", false, "/"},
}

var xssPayloads = []string{
	"<script>alert(1)</script>",
	"<script>alert(document.cookie)</script>",
	`"><script>alert(1)</script>`,
	"<img src=x onerror=alert(1)>",
	"<svg onload=alert(1)>",
	"<svg/onload=alert(document.domain)>",
	"javascript:alert(1)",
	"<body onload=alert(1)>",
	"<iframe src=javascript:alert(1)></iframe>",
}

var xssSpots = []spot{
	{"/api/v1/products/?search=", true, ""},
	{"/login?next=", true, ""},
	{"/accounts/login/?next=", true, ""},
	{"/products/?q=", true, ""},
	{"/", false, ""},
}

// attackTarget returns a request target carrying a payload of class at the
// given encoding level, with the answer the site gives it.
func (g *gen) attackTarget(class, level int) (target string, status, size int) {
	upper := g.rng.IntN(2) == 0
	switch class {
	case classTraversal:
		sp := traversalSpots[g.rng.IntN(len(traversalSpots))]
		file := pick(g, traversalFiles)
		sep := "../"
		if file == "windows/win.ini" {
			sep, file = `..\`, `windows\win.ini`
			level = max(level, levelSingle) // a raw '\' is logged as \x5C
		}
		p := strings.Repeat(sep, 3+g.rng.IntN(6)) + file
		var t string
		switch {
		case level == levelRaw:
			t = p
		case g.rng.IntN(3) == 0 && sep == "../":
			// Only the second dot encoded: CVE-2021-41773 style.
			t = strings.ReplaceAll(p, "../", "."+hexByte('.', upper)+"/")
		case g.rng.IntN(2) == 0:
			t = percent(p, func(c byte) bool { return c == '/' || c == '\\' }, upper)
		default:
			t = percent(p, func(c byte) bool { return c == '/' || c == '\\' || c == '.' }, upper)
		}
		if level == levelDouble {
			t = strings.ReplaceAll(t, "%", "%25")
		}
		target = sp.prefix + t + sp.suffix
		switch {
		case sp.inQuery:
			status, size = 400, 35
		case level == levelDouble:
			status, size = 404, 179
		default:
			// nginx decodes the path, climbs above the root and refuses.
			status, size = 400, 157
		}
		return target, status, size
	case classSQLi:
		sp := sqliSpots[g.rng.IntN(len(sqliSpots))]
		target = sp.prefix + encodePayload(pick(g, sqliPayloads), sp.inQuery, level, upper) + sp.suffix
		switch k := g.rng.IntN(4); {
		case !sp.inQuery:
			return target, 404, 23
		case k == 0:
			return target, 500, 145
		case k == 1:
			return target, 200, 52
		default:
			return target, 400, 41
		}
	default:
		sp := xssSpots[g.rng.IntN(len(xssSpots))]
		target = sp.prefix + encodePayload(pick(g, xssPayloads), sp.inQuery, level, upper) + sp.suffix
		switch {
		case !sp.inQuery:
			return target, 404, 179
		case strings.Contains(sp.prefix, "login"):
			return target, 200, indexSize
		default:
			return target, 200, 52
		}
	}
}

// encodePayload writes p for a URL at the given level. Raw still encodes
// what cannot be sent or logged as is: spaces ('+' in a query, %20 in a
// path), '"', '#' and '%'.
func encodePayload(p string, inQuery bool, level int, upper bool) string {
	if level == levelRaw {
		var b strings.Builder
		for i := 0; i < len(p); i++ {
			switch c := p[i]; c {
			case ' ':
				if inQuery {
					b.WriteByte('+')
				} else {
					b.WriteString("%20")
				}
			case '"', '#', '%', '\\', '?':
				b.WriteString(hexByte(c, upper))
			default:
				b.WriteByte(c)
			}
		}
		return b.String()
	}
	t := percent(p, func(c byte) bool { return !unreserved(c) }, upper)
	if level == levelDouble {
		t = strings.ReplaceAll(t, "%", "%25")
	}
	return t
}

// percent percent-encodes the bytes of s for which enc is true.
func percent(s string, enc func(c byte) bool, upper bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; enc(c) {
			b.WriteString(hexByte(c, upper))
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// hexByte returns the percent-encoding of c, in upper or lower case hex.
func hexByte(c byte, upper bool) string {
	const lower = "0123456789abcdef"
	h := lower
	if upper {
		h = hexUpper
	}
	return string([]byte{'%', h[c>>4], h[c&15]})
}

// unreserved reports whether c is an RFC 3986 unreserved character.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
