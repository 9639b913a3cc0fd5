package loggen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func gen1(t testing.TB, cfg Config) (Stats, *gen, []byte) {
	t.Helper()
	var buf bytes.Buffer
	st, g, err := generate(context.Background(), &buf, cfg, false)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	return st, g, buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Lines: 50_000, Seed: 7}
	st1, _, a := gen1(t, cfg)
	st2, _, b := gen1(t, cfg)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different logs")
	}
	if !slices.Equal(st1.Truth, st2.Truth) || !slices.Equal(st1.Actors, st2.Actors) {
		t.Fatal("same seed, different truth or actors")
	}
	cfg.Seed = 8
	_, _, c := gen1(t, cfg)
	if bytes.Equal(a, c) {
		t.Fatal("different seeds, same log")
	}
}

// Shapes of a request line, written independently of the generator.
var (
	reCombined = regexp.MustCompile(`^(\S+) - (\S+) \[([^\]]+)\] "([A-Z]+) (\S+) (HTTP/\d\.\d)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$`)
	reMain     = regexp.MustCompile(`^(\S+) - (\S+) \[([^\]]+)\] "([A-Z]+) (\S+) (HTTP/\d\.\d)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" "([^"]*)"$`)
	reRequest  = regexp.MustCompile(`^([A-Z]+) (\S+) (HTTP/\d\.\d)$`)
	reNumber   = regexp.MustCompile(`^\d+$`)
)

// clean reports whether s is printable ASCII without '"' or '\', which
// nginx would escape.
func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// parsed is one request line as the test reads it.
type parsed struct {
	key    string
	at     time.Time
	method string
	target string
	status int
}

// parseLog reads a log the way a detector would, with nothing from the
// generator but the format name: it returns the request lines and the
// number of lines that are not requests.
func parseLog(t *testing.T, log []byte, format string) (reqs []parsed, junk int) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var lastTS string
	var when time.Time
	for sc.Scan() {
		line := sc.Text()
		var addr, ts, method, target, status, size, ref, ua string
		switch format {
		case FormatJSON:
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				junk++
				continue
			}
			if len(m) != 8 {
				t.Fatalf("json line with %d keys: %s", len(m), line)
			}
			s := map[string]string{}
			for k, v := range m {
				str, ok := v.(string)
				if !ok {
					t.Fatalf("json key %q is not a string: %s", k, line)
				}
				s[k] = str
			}
			rm := reRequest.FindStringSubmatch(s["request"])
			if rm == nil {
				junk++
				continue
			}
			addr, ts, method, target, status, size, ref, ua = s["remote_addr"], s["time_local"], rm[1], rm[2], s["status"], s["body_bytes_sent"], s["http_referer"], s["http_user_agent"]
			if s["remote_user"] != "" {
				t.Fatalf("remote_user in %s", line)
			}
		default:
			re := reCombined
			if format == FormatMain {
				re = reMain
			}
			m := re.FindStringSubmatch(line)
			if m == nil {
				junk++
				continue
			}
			addr, ts, method, target, status, size, ref, ua = m[1], m[3], m[4], m[5], m[7], m[8], m[9], m[10]
		}
		for _, f := range []string{target, ref, ua} {
			if !clean(f) {
				t.Fatalf("field %q is not clean printable ASCII: %s", f, line)
			}
		}
		if !reNumber.MatchString(status) || !reNumber.MatchString(size) {
			t.Fatalf("bad status or size: %s", line)
		}
		if ts != lastTS {
			var err error
			if when, err = time.Parse("02/Jan/2006:15:04:05 -0700", ts); err != nil {
				t.Fatalf("bad time: %s", line)
			}
			lastTS = ts
		}
		a, err := netip.ParseAddr(addr)
		if err != nil {
			t.Fatalf("bad address: %s", line)
		}
		code, _ := strconv.Atoi(status)
		reqs = append(reqs, parsed{key: a.Unmap().String(), at: when, method: method, target: target, status: code})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return reqs, junk
}

// naiveTruth evaluates the rules on parsed requests from their
// definitions, by brute force: for every request, look back at all the
// client's requests within 60 s.
func naiveTruth(reqs []parsed) map[string]bool {
	type ev struct {
		at   time.Time
		path string
	}
	misses, fails := map[string][]ev{}, map[string][]ev{}
	out := map[string]bool{}
	logins := []string{"/api/auth/login/", "/api/token/", "/accounts/login/", "/admin/login/", "/login"}
	for _, r := range reqs {
		path, query, _ := strings.Cut(r.target, "?")
		if r.status == 404 {
			misses[r.key] = append(misses[r.key], ev{r.at, path})
		}
		if r.method == "POST" && (r.status == 401 || r.status == 403) && slices.Contains(logins, path) {
			fails[r.key] = append(fails[r.key], ev{r.at, path})
		}
		for _, rule := range naivePayload(path, query) {
			out[rule+" "+r.key] = true
		}
	}
	look := func(evs []ev, threshold int, distinct bool) bool {
		for _, last := range evs {
			seen := map[string]bool{}
			n := 0
			for _, e := range evs {
				if e.at.After(last.at) || last.at.Sub(e.at) >= 60*time.Second {
					continue
				}
				n++
				seen[e.path] = true
			}
			if distinct && len(seen) >= threshold || !distinct && n >= threshold {
				return true
			}
		}
		return false
	}
	for k, evs := range misses {
		if look(evs, 50, true) {
			out["http-404-scan "+k] = true
		}
	}
	for k, evs := range fails {
		if look(evs, 20, false) {
			out["auth-bruteforce "+k] = true
		}
	}
	return out
}

func naivePayload(path, query string) []string {
	forms := []string{path + "?" + query}
	p, q := path, query
	for range 2 {
		if u, err := url.PathUnescape(p); err == nil {
			p = u
		}
		if u, err := url.QueryUnescape(q); err == nil {
			q = u
		}
		forms = append(forms, p+"?"+q)
	}
	var rules []string
	for _, f := range forms {
		f = strings.ToLower(f)
		has := func(subs ...string) bool {
			for _, s := range subs {
				if strings.Contains(f, s) {
					return true
				}
			}
			return false
		}
		if has("../", `..\`, "/etc/passwd") {
			rules = append(rules, "path-traversal")
		}
		quote := strings.IndexByte(f, '\'')
		if has("' or '1'='1", "union select", "union all select", "sleep(", "benchmark(", "information_schema") ||
			quote >= 0 && strings.Contains(f[quote:], "--") {
			rules = append(rules, "sql-injection")
		}
		if has("<script", "javascript:", "onerror=", "onload=", "<svg") {
			rules = append(rules, "script-injection")
		}
	}
	return rules
}

func TestFormatsReparse(t *testing.T) {
	for _, format := range []string{FormatCombined, FormatMain, FormatJSON} {
		t.Run(format, func(t *testing.T) {
			const lines = 100_000
			st, _, log := gen1(t, Config{Lines: lines, Seed: 3, Rate: 400, Format: format})
			if n := bytes.Count(log, []byte("\n")); n != lines || st.Lines != lines {
				t.Fatalf("wrote %d lines, stats say %d, want %d", n, st.Lines, lines)
			}
			reqs, junk := parseLog(t, log, format)
			if junk != st.Junk || junk < lines/2000 || junk > lines/500 {
				t.Fatalf("%d junk lines, stats say %d, want about %d", junk, st.Junk, lines/1000)
			}

			// Event-time order, but for a few lines up to 2 s late.
			var newest time.Time
			late := 0
			for _, r := range reqs {
				switch {
				case r.at.After(newest):
					newest = r.at
				case r.at.Before(newest):
					late++
					if newest.Sub(r.at) > 2*time.Second {
						t.Fatalf("line %v is %v late", r, newest.Sub(r.at))
					}
				}
			}
			if late == 0 || late > lines/200 {
				t.Fatalf("%d lines out of order, want about 0.1%%", late)
			}
			if span := newest.Sub(reqs[0].at); span < 200*time.Second || span > 300*time.Second {
				t.Fatalf("log spans %v, want about %v", span, lines/400*time.Second)
			}

			want := map[string]bool{}
			for _, x := range st.Truth {
				want[x.Rule+" "+x.Key] = true
				a := netip.MustParseAddr(x.Key)
				allow := netip.MustParsePrefix("10.0.0.0/8").Contains(a) || netip.MustParsePrefix("192.168.0.0/16").Contains(a)
				if x.Allowlisted != allow {
					t.Errorf("%+v: allowlisted should be %v", x, allow)
				}
			}
			got := naiveTruth(reqs)
			for k := range want {
				if !got[k] {
					t.Errorf("truth has %s, the re-parsed log does not", k)
				}
			}
			for k := range got {
				if !want[k] {
					t.Errorf("re-parsed log has %s, truth does not", k)
				}
			}
		})
	}
}

func TestTruthMatchesActors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"100k default rate", Config{Lines: 100_000, Seed: 1}},
		{"100k over 8 minutes", Config{Lines: 100_000, Seed: 2, Rate: 200}},
		{"30k over 10 minutes", Config{Lines: 30_000, Seed: 3, Rate: 50, Format: FormatJSON}},
		{"5k lines", Config{Lines: 5_000, Seed: 4}},
		{"explicit counts", Config{Lines: 200_000, Seed: 5, Rate: 500, Scanners: 12, SlowScanners: 6, BruteForcers: 10, Attackers: 9, Decoys: 22, Allowlisted: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, g, _ := gen1(t, tc.cfg)
			checkTruth(t, st, g)
		})
	}
}

// checkTruth checks the computed truth against the actors' intentions, and
// that no detection depends on the window's exact edge.
func checkTruth(t *testing.T, st Stats, g *gen) {
	t.Helper()
	truth := map[string][]Truth{}
	for _, x := range st.Truth {
		truth[x.Key] = append(truth[x.Key], x)
	}
	kinds := map[string]int{}
	var v6, mapped bool
	for _, a := range g.actors {
		kinds[a.Kind]++
		got := truth[a.Key]
		delete(truth, a.Key)
		if a.Expect == "" {
			if len(got) > 0 {
				t.Errorf("%s (%s, %s) must not fire, fired %v", a.Name, a.Key, a.Note, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Rule != a.Expect || got[0].Actor != a.Name || got[0].Allowlisted != (a.Kind == KindAllowlisted) {
			t.Errorf("%s (%s, %s) should fire %s only, got %+v", a.Name, a.Key, a.Note, a.Expect, got)
		}
		if a.Kind == KindScanner {
			v6 = v6 || strings.Contains(a.Key, ":")
			mapped = mapped || strings.HasPrefix(g.clients[a.client].logged, "::ffff:")
		}
	}
	for key, x := range truth {
		t.Errorf("ordinary client %s fired %+v", key, x)
	}
	c := g.cfg
	want := map[string]int{KindScanner: c.Scanners, KindSlowScanner: c.SlowScanners, KindBruteForcer: c.BruteForcers,
		KindAttacker: c.Attackers, KindDecoy: c.Decoys, KindAllowlisted: c.Allowlisted}
	if c.Lines >= 30_000 && !maps.Equal(kinds, want) {
		t.Errorf("planned %v, want %v", kinds, want)
	}
	if c.Scanners >= 3 && (!v6 || !mapped) {
		t.Errorf("want an IPv6 scanner (%v) and an IPv4-mapped one (%v)", v6, mapped)
	}
	for _, w := range []int64{56 * second, 64 * second} {
		if got := g.truth(w); !slices.Equal(got, st.Truth) {
			t.Errorf("truth with a %ds window differs: a detection sits on the window's edge", w/second)
		}
	}
}

func TestSiteIsClean(t *testing.T) {
	o := newOracle()
	strs := slices.Concat(wordlist(), staleAssets, spaRoutes, categories, searchWords, productSlugs,
		externalReferrers, browserAgents, botAgents, apiAgents, bruteAgents, loginPaths)
	for _, a := range slices.Concat(staticAssets, shellAssets, adminAssets, benignTargets) {
		strs = append(strs, a.path)
	}
	for _, tool := range slices.Concat(scanTools, internalTools) {
		strs = append(strs, tool.agent(1))
	}
	for _, s := range strs {
		if !clean(s) {
			t.Errorf("%q is not clean printable ASCII", s)
		}
		if rules := o.payloadRules(s); rules != 0 {
			t.Errorf("%q carries a payload: %b", s, rules)
		}
	}
	if n := len(wordlist()); n < 10_000 {
		t.Errorf("wordlist has %d paths, want many", n)
	}
}

func TestAttackTargets(t *testing.T) {
	g := newGen(Config{Seed: 1})
	o := newOracle()
	for class := range classRule {
		for level := range 3 {
			for range 200 {
				target, _, _ := g.attackTarget(class, level)
				if !clean(target) || strings.Contains(target, " ") {
					t.Fatalf("%q is not a clean request target", target)
				}
				if rules := o.payloadRules(target); rules != 1<<class {
					t.Errorf("%q (level %d) fires %b, want %s", target, level, rules, classRule[class])
				}
				path, query, _ := strings.Cut(target, "?")
				if rules := naivePayload(path, query); len(rules) == 0 || rules[0] != classRule[class] {
					t.Errorf("%q (level %d): the naive check finds %v", target, level, rules)
				}
			}
		}
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := Generate(io.Discard, Config{Lines: 0, Rate: -1, Format: "apache", IPv6Share: 2, Junk: 0.9})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, field := range []string{"lines", "rate", "format", "ipv6 share", "junk"} {
		if !strings.Contains(err.Error(), "loggen: "+field+":") {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
}

func TestNone(t *testing.T) {
	st, g, log := gen1(t, Config{Lines: 20_000, Seed: 1, Scanners: -1, SlowScanners: -1, BruteForcers: -1,
		Attackers: -1, Decoys: -1, Allowlisted: -1, IPv6Share: -1, Junk: -1})
	if len(st.Truth) != 0 || len(g.actors) != 0 || st.Junk != 0 {
		t.Fatalf("want no actors, truth or junk, got %d, %d, %d", len(g.actors), len(st.Truth), st.Junk)
	}
	if bytes.Contains(log, []byte("2001:db8")) {
		t.Fatal("IPv6 clients with IPv6Share < 0")
	}
}

func TestWriteTruth(t *testing.T) {
	in := []Truth{
		{Rule: "sql-injection", Key: "198.51.100.7", Actor: "attacker-02"},
		{Rule: "http-404-scan", Key: "203.0.113.9", Actor: "scanner-01"},
		{Rule: "http-404-scan", Key: "10.1.2.3", Allowlisted: true, Actor: "allowlisted-scanner-01"},
	}
	var b bytes.Buffer
	if err := WriteTruth(&b, in); err != nil {
		t.Fatal(err)
	}
	want := `{"rule":"http-404-scan","key":"10.1.2.3","allowlisted":true,"actor":"allowlisted-scanner-01"}
{"rule":"http-404-scan","key":"203.0.113.9","allowlisted":false,"actor":"scanner-01"}
{"rule":"sql-injection","key":"198.51.100.7","allowlisted":false,"actor":"attacker-02"}
`
	if b.String() != want {
		t.Fatalf("got\n%swant\n%s", b.String(), want)
	}
	if in[0].Rule != "sql-injection" {
		t.Fatal("WriteTruth reordered its argument")
	}
}

func TestFollow(t *testing.T) {
	t.Run("lines", func(t *testing.T) {
		var b bytes.Buffer
		began := time.Now()
		st, err := Follow(context.Background(), &b, Config{Lines: 300, Rate: 2000, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if st.Lines != 300 || bytes.Count(b.Bytes(), []byte("\n")) != 300 {
			t.Fatalf("wrote %d lines, want 300", st.Lines)
		}
		if d := time.Since(began); d < 100*time.Millisecond || d > 5*time.Second {
			t.Fatalf("300 lines at 2000/s took %v", d)
		}
		first := b.String()[:bytes.IndexByte(b.Bytes(), '\n')]
		_, ts, _ := strings.Cut(first, "[")
		ts, _, _ = strings.Cut(ts, "]")
		at, err := time.Parse("02/Jan/2006:15:04:05 -0700", ts)
		if err != nil || at.Sub(began).Abs() > 2*time.Second {
			t.Fatalf("first line is not timestamped now (%v): %s", began, first)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		var b bytes.Buffer
		st, err := Follow(ctx, &b, Config{Lines: 100_000, Rate: 1000, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if st.Lines == 0 || st.Lines > 5000 || bytes.Count(b.Bytes(), []byte("\n")) != st.Lines {
			t.Fatalf("wrote %d lines (stats %d) in 300ms at 1000/s", bytes.Count(b.Bytes(), []byte("\n")), st.Lines)
		}
	})
}

// BenchmarkGenerate writes 1M lines of the default configuration.
func BenchmarkGenerate(b *testing.B) {
	const lines = 1_000_000
	for b.Loop() {
		if _, err := Generate(io.Discard, Config{Lines: lines, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(lines*b.N)/b.Elapsed().Seconds(), "lines/s")
}

func ExampleGenerate() {
	var log bytes.Buffer
	st, err := Generate(&log, Config{Lines: 100_000, Seed: 1})
	if err != nil {
		panic(err)
	}
	rules := map[string]int{}
	for _, x := range st.Truth {
		rules[x.Rule]++
	}
	fmt.Println(st.Lines, rules["http-404-scan"] > 0, rules["auth-bruteforce"] > 0)
	// Output: 100000 true true
}
