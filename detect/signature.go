package detect

import (
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Signature classes as bits, so an event is classified once for all rules.
const (
	sigTraversal uint8 = 1 << iota
	sigSQLi
	sigXSS
)

func sigClass(name string) uint8 {
	switch name {
	case SigPathTraversal:
		return sigTraversal
	case SigSQLInjection:
		return sigSQLi
	case SigScriptInjection:
		return sigXSS
	}
	return 0
}

// Needles are searched in the normalised request target: percent-decoded
// (twice, so double encoding is seen through), '+' read as a space,
// lower-cased, whitespace runs and SQL comments collapsed to one space.
var (
	traversalNeedles = []string{"../", "..\\", "..;/", "/etc/passwd", "/etc/shadow", "/proc/self/", "win.ini", "boot.ini"}
	sqliNeedles      = []string{
		"or 1=1", "'='", "union all select", "waitfor delay", "information_schema.", "from information_schema",
		"'--", "' --", "'#", "extractvalue(", "updatexml(", "load_file(", "@@version",
	}
	xssNeedles = []string{
		"<script", "</script", "onerror=", "onload=", "onmouseover=", "onfocus=", "document.cookie",
	}
	// Needles that words of ordinary text also hold ("parents' and
	// teachers'", "trade union select committee", "sleep(apnea)",
	// "javascript: the good parts", "alert() in js", "<img> tag"): they
	// count only where what follows them is code, see followedByCode.
	sqliLeads = []lead{
		{"' or ", sqlOperand}, {"\" or ", sqlOperand}, {"' and ", sqlOperand}, {"\" and ", sqlOperand},
		{"';", sqlStatement}, {"\";", sqlStatement},
		{"union select", selectList},
		{"sleep(", number}, {"benchmark(", number}, {"pg_sleep(", number},
	}
	xssLeads = []lead{
		{"javascript:", noSpace}, {"vbscript:", noSpace},
		{"<svg", tagAttrs}, {"<iframe", tagAttrs}, {"<img", tagAttrs}, {"<body", tagAttrs},
		{"alert(", callArgs}, {"prompt(", callArgs}, {"eval(", callArgs}, {"alert`", always},
	}
)

// eventHandler reports whether s sets an HTML event handler attribute: a
// space, quote or '/' then "on", letters and "=" ("\" onpointerover=",
// "<svg/onload="), as injected markup does; "lemon onion" or "on=1" do not.
func eventHandler(s string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], "on")
		if j < 0 {
			return false
		}
		at := i + j
		i = at + 2
		if at == 0 || (s[at-1] != ' ' && s[at-1] != '"' && s[at-1] != '\'' && s[at-1] != '/') {
			continue
		}
		n := i
		for n < len(s) && s[n] >= 'a' && s[n] <= 'z' {
			n++
		}
		if n < len(s) && s[n] == '=' && hasPrefixAny(s[i:n], handlerEvents...) {
			return true
		}
	}
}

// handlerEvents begin the names of HTML event handlers ("on" + these).
var handlerEvents = []string{"abort", "animation", "auxclick", "before", "begin", "blur", "cancel", "canplay", "change",
	"click", "close", "contextmenu", "copy", "cut", "dblclick", "drag", "drop", "end", "error", "focus", "hashchange",
	"input", "invalid", "key", "load", "message", "mouse", "page", "paste", "pause", "play", "pointer", "popstate",
	"progress", "reset", "resize", "scroll", "search", "select", "show", "start", "submit", "toggle", "touch",
	"transition", "unload", "wheel"}

// lead is a needle that is a signature only when what follows it in the
// text passes code.
type lead struct {
	needle string
	code   func(rest string) bool
}

// followedByCode reports whether one of leads occurs in s followed by
// what its check takes for code.
func followedByCode(s string, leads []lead) bool {
	for _, l := range leads {
		for i := 0; ; {
			j := strings.Index(s[i:], l.needle)
			if j < 0 {
				break
			}
			i += j + len(l.needle)
			if l.code(s[i:]) {
				return true
			}
		}
	}
	return false
}

func always(string) bool { return true }

// sqlOperand: after "' or ", a SQL operand or condition rather than a word
// of text: a number, '(', '@', '-', a quoted operand compared ("' or
// 'a'='a"), one of SQL's words ("true"), a name compared ("uid=0") or a
// call ("row(1,1)"). "the beatles' or the stones'" and "parents' and
// teachers'" go on in words, "\"a\" or \"b\"" in a quoted phrase.
func sqlOperand(rest string) bool {
	if rest == "" {
		return true // the statement ends: "admin' or " then the application's quote
	}
	switch c := rest[0]; {
	case c >= '0' && c <= '9', c == '(', c == '@', c == '-', c == '#':
		return true
	case c == '\'' || c == '"':
		// A quoted operand compared ("' or ''='", "\" or \"\"=\""), not
		// a quoted phrase ("\"deep learning\"").
		_, after := operand(rest)
		return hasPrefixAny(strings.TrimLeft(after, " "), "=", "<", ">", "!=", "like ")
	}
	return hasPrefixAny(rest, "true", "false", "not ", "not(", "exists", "sleep(", "benchmark(", "pg_sleep(",
		"if(", "case ", "char(", "ascii(", "substr", "length(", "user(", "version(", "database(", "select ", "null") ||
		compared(rest) || called(rest)
}

// called reports whether rest starts with a function call: a name and
// "(" ("row(1,1)", "elt(1=1,1)").
func called(rest string) bool {
	n := nameLen(rest, false)
	return n > 0 && n < len(rest) && rest[n] == '('
}

// nameLen returns the length of the SQL name rest starts with (letters,
// digits, '_', and with dotted '.' as in "information_schema.tables").
func nameLen(rest string, dotted bool) int {
	n := 0
	for n < len(rest) && (isWordByte(rest[n]) || rest[n] == '_' || dotted && rest[n] == '.') {
		n++
	}
	return n
}

// compared reports whether rest starts with a name compared with
// something: "username like '%", "uid=0", "id in(".
func compared(rest string) bool {
	n := nameLen(rest, true)
	if n == 0 {
		return false
	}
	rest = strings.TrimLeft(rest[n:], " ")
	return hasPrefixAny(rest, "=", "<", ">", "!=", "like ", "in(", "in (", "is null", "is not ", "between ", "regexp ", "rlike ")
}

// sqlStatement: after "';", the end of the statement or another one
// ("'; drop table", "';--"), not a list of quoted words ("'Jaws'; 'Alien'").
func sqlStatement(rest string) bool {
	rest = strings.TrimLeft(rest, " ")
	if rest == "" || rest[0] == '-' || rest[0] == '#' {
		return true
	}
	return hasPrefixAny(rest, "drop ", "select ", "insert ", "update ", "delete ", "exec", "declare ", "shutdown",
		"waitfor ", "create ", "alter ", "truncate ", "begin", "set ", "if ", "call ")
}

// selectList: after "union select", the end of the text or a select list
// (1,2,3 / null / * / a quoted value or a function), or a FROM later on
// ("union select username, password from users"), not words of text
// ("trade union select committee").
func selectList(rest string) bool {
	rest = strings.TrimLeft(rest, " ")
	if rest == "" {
		return true
	}
	switch c := rest[0]; {
	case c >= '0' && c <= '9', c == '*', c == '@', c == '(', c == '\'', c == '"', c == '-':
		return true
	}
	return hasPrefixAny(rest, "null", "concat", "group_concat", "char(", "version(", "user(", "database(", "table_name", "column_name") ||
		strings.Contains(rest, " from ") || called(rest) || listed(rest)
}

// listed reports whether rest starts with a name and a comma: a select
// list ("user,pass").
func listed(rest string) bool {
	n := nameLen(rest, true)
	rest = strings.TrimLeft(rest[n:], " ")
	return n > 0 && rest != "" && rest[0] == ','
}

// number: a call's first argument is a number ("sleep(5)", "sleep( 5 )"),
// not a word ("sleep(apnea)").
func number(rest string) bool {
	rest = strings.TrimLeft(rest, " ")
	// '_' and '[' open the placeholders sqlmap fills ("sleep(__TIME__)",
	// "SLEEP([SLEEPTIME])").
	return rest != "" && (rest[0] >= '0' && rest[0] <= '9' || rest[0] == '@' || rest[0] == '(' || rest[0] == '_' || rest[0] == '[' || rest[0] == '-')
}

// noSpace: a URI scheme followed by code ("javascript:alert(1)"), not by a
// space as in text ("javascript: the good parts").
func noSpace(rest string) bool { return rest != "" && rest[0] != ' ' }

// tagAttrs: a tag opened with attributes ("<img src=x onerror=...>",
// "<svg/onload=...>"), not a tag named in text ("<img> tag").
func tagAttrs(rest string) bool { return rest != "" && (rest[0] == ' ' || rest[0] == '/') }

// callArgs: a call with an argument ("alert(1)", "prompt(document.domain)"),
// not the function named in text ("alert()").
func callArgs(rest string) bool { return rest != "" && rest[0] != ')' }

// hasPrefixAny reports whether rest starts with one of words.
func hasPrefixAny(rest string, words ...string) bool {
	for _, w := range words {
		if strings.HasPrefix(rest, w) {
			return true
		}
	}
	return false
}

// interesting marks bytes that can start or belong to a payload; a target
// without any of them (the common case: /api/v1/orders/12/) is not decoded.
var interesting = func() (t [256]bool) {
	for _, c := range []byte("%'\"<>\\();+ *:=#@") {
		t[c] = true
	}
	return t
}()

// sigScanner classifies request targets. It owns scratch buffers and is not
// safe for concurrent use.
type sigScanner struct {
	a, b []byte
}

// classify returns the signature classes found in target.
func (s *sigScanner) classify(target string) uint8 {
	if !mayCarryPayload(target) {
		return 0
	}
	s.a = percentDecode(s.a[:0], target)
	s.b = percentDecode(s.b[:0], unsafe.String(unsafe.SliceData(s.a), len(s.a)))
	s.a = normalise(s.a[:0], s.b)
	text := unsafe.String(unsafe.SliceData(s.a), len(s.a))
	var c uint8
	if containsAny(text, traversalNeedles) || backslashUp(text) {
		c |= sigTraversal
	}
	if containsAny(text, sqliNeedles) || followedByCode(text, sqliLeads) || tautology(text) || orderByColumn(text) {
		c |= sigSQLi
	}
	if containsAny(text, xssNeedles) || followedByCode(text, xssLeads) || eventHandler(text) {
		c |= sigXSS
	}
	return c
}

func mayCarryPayload(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if interesting[c] || c == 0xc0 || c == 0xc1 || c == 0xe0 { // or an overlong form (pathChar)
			return true
		}
		if c == '.' && i+1 < len(t) && t[i+1] == '.' {
			return true
		}
		if c == '/' && (strings.HasPrefix(t[i+1:], "etc/") || strings.HasPrefix(t[i+1:], "proc/")) {
			return true
		}
		if c == '.' && strings.HasPrefix(t[i+1:], "ini") {
			return true
		}
	}
	return false
}

func containsAny(s string, needles []string) bool {
	for _, n := range needles {
		if strings.Contains(s, n) {
			return true
		}
	}
	return false
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// percentDecode appends s to dst with %XX sequences decoded, IIS's %uXXXX
// as UTF-8 (look-alikes of '.', '/' and '\\' as those), and '+' as a
// space. Invalid sequences are kept as they are.
func percentDecode(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U'):
			var r rune
			ok := true
			for _, h := range []byte(s[i+2 : i+6]) {
				v, isHex := unhex(h)
				ok = ok && isHex
				r = r<<4 | rune(v)
			}
			if !ok {
				dst = append(dst, c)
				continue
			}
			// IIS read look-alikes of '.', '/' and '\\' sent as %u as the
			// characters themselves. Raw UTF-8 text with them (Japanese
			// "...／") is left alone: no browser sends %u.
			switch r {
			case 0xff0e:
				r = '.'
			case 0xff0f, 0x2215:
				r = '/'
			case 0xff3c, 0x2216:
				r = '\\'
			}
			dst = utf8.AppendRune(dst, r)
			i += 5
		case c == '%' && i+2 < len(s):
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				dst = append(dst, hi<<4|lo)
				i += 2
				continue
			}
			dst = append(dst, c)
		case c == '+':
			dst = append(dst, ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// backslashUp reports whether s has "\\.." as a path step ("\\..\\",
// "\\../", "\\..%", at the end): a Windows traversal written from the
// other side. A regular expression such as "^.*\\..*$" is no path step.
func backslashUp(s string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], "\\..")
		if j < 0 {
			return false
		}
		i += j + 3
		if i == len(s) || s[i] == '\\' || s[i] == '/' || s[i] == '%' {
			return true
		}
	}
}

// tautology reports whether s holds a SQL condition an injection probes
// with: "or"/"and" right after the end of a value (a digit, quote or ')',
// then at most one space: "1 or", "' or", ") and") and followed by a
// comparison of two equal operands (1=1, 'a'='a', user()=user()). Searches
// such as "this or that=that" or "2 and 2 = 4" do not match: no value ends
// before the keyword, or the operands differ. (The false half of a blind
// probe, "1 and 2=0", is let through for that reason; its true half is not.)
// s is normalised (lower case, one space for any run).
func tautology(s string) bool {
	for _, kw := range [...]string{"or", "and"} {
		for i := 0; ; {
			j := strings.Index(s[i:], kw)
			if j < 0 {
				break
			}
			at := i + j
			i = at + len(kw)
			if comparesEqual(s, at, s[i:]) {
				return true
			}
		}
	}
	return false
}

// comparesEqual reports whether the keyword at s[at:] follows the end of a
// value and comes before a space, quote or '(', and rest, what follows it,
// compares two equal operands.
func comparesEqual(s string, at int, rest string) bool {
	if !afterValue(s, at) || rest == "" || rest[0] != ' ' && rest[0] != '\'' && rest[0] != '"' && rest[0] != '(' {
		return false
	}
	rest = strings.TrimLeft(rest, " (")
	a, rest := operand(rest)
	rest = strings.TrimLeft(rest, " ")
	if a == "" || rest == "" || rest[0] != '=' {
		return false
	}
	b, _ := operand(strings.TrimLeft(rest[1:], " "))
	return b == a
}

// afterValue reports whether s[:at] ends a value an injection closes: a
// digit, quote or ')', and at most one space after it.
func afterValue(s string, at int) bool {
	i := at - 1
	if i >= 0 && s[i] == ' ' {
		i--
	}
	if i < 0 {
		return false
	}
	c := s[i]
	return c >= '0' && c <= '9' || c == '\'' || c == '"' || c == ')'
}

// operand returns the operand s starts with, quoted ('a', "a") or bare
// (1, user, user()), without its quotes, and what follows it. A quote left
// open at the end is the application's to close: "a"="a.
func operand(s string) (string, string) {
	if s == "" {
		return "", s
	}
	if q := s[0]; q == '\'' || q == '"' {
		if end := strings.IndexByte(s[1:], q); end >= 0 {
			return s[1 : end+1], s[end+2:]
		}
		return strings.TrimRight(s[1:], " "), ""
	}
	n := 0
	for n < len(s) && (isWordByte(s[n]) || s[n] == '_' || s[n] == '@' || s[n] == '.') {
		n++
	}
	if strings.HasPrefix(s[n:], "()") {
		n += 2
	}
	return s[:n], s[n:]
}

func isWordByte(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// orderByColumn reports whether s orders by a column number right after the
// end of a value and ends the statement ("1 order by 1--", "' order by
// 3#"), how an injection counts a query's columns. "order by 5pm" and
// "mysql order by 1;" are searches, not SQL.
func orderByColumn(s string) bool {
	for i := strings.Index(s, "order by "); i >= 0; {
		rest := s[i+len("order by "):]
		if !afterValue(s, i) {
			rest = ""
		}
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if rest = strings.TrimLeft(rest[n:], " "); n > 0 && (strings.HasPrefix(rest, "--") || strings.HasPrefix(rest, "#") || strings.HasPrefix(rest, ";")) {
			return true
		}
		next := strings.Index(s[i+1:], "order by ")
		if next < 0 {
			return false
		}
		i += 1 + next
	}
	return false
}

// normalise appends src lower-cased, with whitespace runs and /**/ comments
// collapsed to one space, so "UNION/**/SELECT" and "union%0a%09select" read
// "union select".
func normalise(dst, src []byte) []byte {
	space := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '/' && i+1 < len(src) && src[i+1] == '*' {
			if end := strings.Index(unsafe.String(unsafe.SliceData(src[i+2:]), len(src)-i-2), "*/"); end >= 0 {
				i += 2 + end + 1
				c = ' '
			}
		}
		switch c {
		case ' ', '\t', '\n', '\r', '\v', '\f', 0:
			if !space {
				dst = append(dst, ' ')
				space = true
			}
			continue
		}
		space = false
		if c >= 0xc0 {
			if d, n := pathChar(src[i:]); n > 0 {
				dst = append(dst, d)
				i += n - 1
				continue
			}
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// pathChar reads the '.', '/' or '\\' that b starts with in an overlong
// UTF-8 form, which a lenient decoder (old IIS, some Java and Python
// servers) turns back into it: C0 AE, C0 AF, C1 9C, IIS's C1 1C, E0 80 AE,
// and C0 or C1 before the character itself. No valid UTF-8 text has these.
// It returns the character and the bytes it took, or 0, 0.
func pathChar(b []byte) (byte, int) {
	var c byte
	n := 0
	switch {
	case len(b) >= 2 && (b[0] == 0xc0 || b[0] == 0xc1) && (b[1] == '.' || b[1] == '/' || b[1] == '\\'):
		c, n = b[1], 2 // the lead byte swallowed by a decoder that skips it
	case len(b) >= 2 && (b[0] == 0xc0 || b[0] == 0xc1) && (b[1]&0xc0 == 0x80 || b[0] == 0xc1 && b[1] == 0x1c):
		c, n = (b[0]&1)<<6|b[1]&0x3f, 2
	case len(b) >= 3 && b[0] == 0xe0 && b[1] == 0x80:
		c, n = b[2]&0x3f, 3
	}
	if c == '.' || c == '/' || c == '\\' {
		return c, n
	}
	return 0, 0
}
