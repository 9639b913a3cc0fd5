package detect

import (
	"strings"
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
		"' or ", "\" or ", "' and ", "or 1=1", "'='", "union select", "union all select",
		"sleep(", "benchmark(", "pg_sleep(", "waitfor delay", "information_schema",
		"'--", "' --", "'#", "';", "extractvalue(", "updatexml(", "load_file(", "@@version",
	}
	xssNeedles = []string{
		"<script", "</script", "javascript:", "vbscript:", "onerror=", "onload=", "onmouseover=",
		"onfocus=", "<svg", "<iframe", "<img", "<body", "document.cookie", "alert(", "prompt(", "eval(",
	}
)

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
	if containsAny(text, traversalNeedles) {
		c |= sigTraversal
	}
	if containsAny(text, sqliNeedles) {
		c |= sigSQLi
	}
	if containsAny(text, xssNeedles) {
		c |= sigXSS
	}
	return c
}

func mayCarryPayload(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if interesting[c] {
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

// percentDecode appends s to dst with %XX sequences decoded and '+' as a
// space. Invalid sequences are kept as they are.
func percentDecode(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
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
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
