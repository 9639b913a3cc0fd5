package detect

import (
	"net/netip"
	"testing"

	"github.com/vigil-soc/vigil/event"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		target string
		want   uint8
	}{
		{"/api/v1/orders/12/?page=2", 0},
		{"/static/js/main.3f2a.js", 0},
		{"/search?q=rock+and+roll", 0},
		{"/static/../../etc/passwd", sigTraversal},
		{"/static/..%2f..%2fetc/passwd", sigTraversal},
		{"/download?file=%252e%252e%252fsecret", sigTraversal},
		{"/cgi-bin/..%5c..%5cwindows/win.ini", sigTraversal},
		{"/item?id=1'%20OR%20'1'='1", sigSQLi},
		{"/item?id=1+UNION+SELECT+username,password+FROM+users", sigSQLi},
		{"/item?id=1/**/UnIoN/**/SeLeCt/**/1", sigSQLi},
		{"/item?id=1%2520union%2520all%2520select%25201", sigSQLi},
		{"/item?id=1%27%3BWAITFOR%20DELAY%20%270:0:5%27--", sigSQLi},
		{"/item?id=sleep(5)", sigSQLi},
		{"/search?q=<script>alert(1)</script>", sigXSS},
		{"/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", sigXSS},
		{"/search?q=%253Csvg%2520onload%253Dalert(1)%253E", sigXSS},
		{"/r?next=javascript:alert(document.cookie)", sigXSS},
		{"/cgi-bin/show?f=/proc/self/environ", sigTraversal},
		{"/c/win.ini", sigTraversal},
		// Disguised dots and slashes that lenient decoders turn back.
		{"/static/..%c0%af..%c0%afetc/hosts", sigTraversal},
		{"/static/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/hosts", sigTraversal},
		{"/static/..%c1%9c..%c1%9cboot.txt", sigTraversal},
		{"/static/%e0%80%ae%e0%80%ae/x", sigTraversal},
		{"/static/..%u2215..%u2215x", sigTraversal},
		{"/static/..%u2216..%u2216x", sigTraversal},
		{"/static/%uff0e%uff0e%u2215x", sigTraversal},
		{"/static/%25%5c..%25%5c..%25%5c..%00", sigTraversal},
		{"/static/caf%c3%a9/men%C3%BC.html", 0}, // real UTF-8 is no disguise
		{"/static/..%c1%1c..%c1%1cx", sigTraversal},
		{"/static/%c0%2e%c0%2e%c0%2fx", sigTraversal},
		{"/voil%C0./x", 0}, // Latin-1 "voilÀ./" makes "voil./"
		// Tautologies and column counting.
		{"/item?id=1%20or%200=0%20--", sigSQLi},
		{"/item?id=1 and 2=0", 0}, // the false half of a blind probe: "2 and 2 = 4" reads the same
		{"/item?id=1/**/and/**/2=2", sigSQLi},
		{"/item?id=1%20AND%20USER=USER", sigSQLi},
		{"/item?id=1 and user()=user()", sigSQLi},
		{`/item?q=hi") or ("a"="a`, sigSQLi},
		{"/item?id=1%20ORDER%20BY%201--%20-", sigSQLi},
		{"/item?id=1 order by 3%23", sigSQLi},
		{"/search?q=black+or+white", 0},
		{"/search?q=tom+and+jerry&page=2", 0},
		{"/search?q=order+by+5pm", 0},
		{"/search?q=order+by+2+days", 0},
		{"/search?q=colors&order=1", 0},
		{"/search?q=x+and+y=z", 0},
		// Ordinary searches and values that look like the patterns.
		{"/search?q=2+and+2+%3D+4", 0},
		{"/search?q=1+and+1%3D2+meme", 0},
		{"/search?q=what+is+5+or+5%3D10", 0},
		{"/search?q=x+or+x%3Dx", 0},
		{"/search?q=yes+or+no%3Dno", 0},
		{"/search?q=this+or+that%3Dthat", 0},
		{"/search?q=ORDER+BY+1+--+what+does+it+mean", 0},
		{"/search?q=mysql+order+by+1%3B", 0},
		{"/search?q=order+by+10%23", 0},
		{"/logs?q=%5E.%2A%5C..%2A%24", 0},         // ^.*\..*$
		{"/search?pattern=www%5C..%2B%5C.com", 0}, // www\..+\.com
		{"/search?q=C%3A%5CUsers%5CBob%5C...", 0},
		{"/search?q=%E3%81%BE%E3%81%95%E3%81%8B...%EF%BC%8F%E7%B6%9A%E5%A0%B1", 0}, // Japanese "...／"
		{"/search?q=%EF%BC%8E%EF%BC%8E%EF%BC%8F", 0},                               // raw UTF-8 "．．／"
		{"/search?q=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", 0},
		// Searches a QA pass saw banned: words of text after the needles.
		{"/search?q=parents%27+and+teachers%27+association", 0},
		{"/search?q=the+beatles%27+or+the+stones%27", 0},
		{"/search?q=%22machine+learning%22+or+%22deep+learning%22", 0},
		{"/search?q=%27Jaws%27%3B+%27Alien%27", 0},
		{"/search?q=trade+union+select+committee", 0},
		{"/search?q=information_schema+tutorial", 0},
		{"/search?q=sleep(apnea)+book", 0},
		{"/search?q=javascript%3A+the+good+parts", 0},
		{"/search?q=how+to+use+alert()+in+js", 0},
		{"/search?q=%3Cimg%3E+tag+tutorial", 0},
		{"/search?q=O%27Brien+and+D%27Angelo", 0},
		// ... and the payloads those needles are for.
		{"/item?id=1%27+or+username+like+%27%25", sigSQLi},
		{"/item?id=1%27+or+true--", sigSQLi},
		{"/item?id=1%27+and+sleep(5)%23", sigSQLi},
		{"/item?id=1%27%3B+drop+table+users--", sigSQLi},
		{"/item?id=1%27+union+select", sigSQLi},
		{"/item?id=1+union+select+null,null", sigSQLi},
		{"/item?id=1+union+select+username,password+from+users", sigSQLi},
		{"/item?id=1+and+1=1+union+select+table_name+from+information_schema.tables", sigSQLi},
		{"/item?id=sleep(%205%20)", sigSQLi},
		{`/item?q=1" or "a"="a`, sigSQLi},
		{"/search?q=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E", sigXSS},
		{"/search?q=%3Csvg%2Fonload%3Dprompt(1)%3E", sigXSS},
		{"/search?q=%3Ciframe+src%3Djavascript:alert(1)%3E", sigXSS},
		{"/search?q=alert%601%60", sigXSS},
		// Payloads a review found the first version of those checks missed.
		{`/login?u=" or ""="`, sigSQLi},
		{"/item?id=1%27+and+row(1,1)%3E(select+count(*)+from+x)--", sigSQLi},
		{"/item?id=1%27+and+elt(1%3D1,1)", sigSQLi},
		{"/item?id=-1+union+select+user,pass", sigSQLi},
		{"/item?id=1+or+sleep(__TIME__)%23", sigSQLi},
		{`/search?q=" onpointerover=alert()`, sigXSS},
		{"/search?q=lemon+onion%3D3", 0},
		// Raw overlong bytes (nginx's log decodes \xC0\xAE to them).
		{"/static/\xc0\xae\xc0\xae/\xc0\xae\xc0\xae/etc/hosts", sigTraversal},
		{"/static/..\\..\\x", sigTraversal},
		{"/static/%5C..%5Cwinnt", sigTraversal},
	}
	var s sigScanner
	for _, tc := range cases {
		if got := s.classify(tc.target); got != tc.want {
			t.Errorf("classify(%q) = %03b, want %03b", tc.target, got, tc.want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	f.Add("/a/../b")
	f.Add("/x?q=%25%32%65")
	f.Add("/x?q=/*")
	f.Fuzz(func(t *testing.T, target string) {
		var s sigScanner
		s.classify(target)
	})
}

func BenchmarkClassify(b *testing.B) {
	var s sigScanner
	targets := []string{"/api/v1/orders/12/?page=2", "/static/js/main.3f2a.js", "/item?id=1+UNION+SELECT+1", "/search?q=%3Cscript%3E"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.classify(targets[i%len(targets)])
	}
}

// TestSampleAppEvent: an application event's evidence says what happened,
// to whom and from where, so an alert over many names their clients.
func TestSampleAppEvent(t *testing.T) {
	ev := event.Event{Source: event.SourceApp, Action: "login-failed", UserName: "alice", SourceIP: netip.MustParseAddr("198.51.100.7"), Path: "/api/token/"}
	if got, want := Sample(&ev), "login-failed user=alice from 198.51.100.7 /api/token/"; got != want {
		t.Errorf("Sample = %q, want %q", got, want)
	}
	ev = event.Event{Source: event.SourceApp, Action: "suspicious-operation", Name: "DisallowedHost", SourceIP: netip.MustParseAddr("2001:db8::1")}
	if got, want := Sample(&ev), "suspicious-operation DisallowedHost from 2001:db8::1"; got != want {
		t.Errorf("Sample = %q, want %q", got, want)
	}
	ev = event.Event{Source: event.SourceAccess, Target: "/x?id=1"}
	if got := Sample(&ev); got != "/x?id=1" {
		t.Errorf("Sample of an access event = %q, want its target", got)
	}
}
