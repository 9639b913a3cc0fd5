package csp

// valid reports whether b is one JSON value, with optional space around
// it, nested at most MaxDepth deep: what json.Valid and checkDepth decide
// together, in one pass and without the per-byte calls of encoding/json's
// scanner. Like json.Valid it does not check that strings are UTF-8. The
// callers explain a refusal with the slower checkDepth and json.Unmarshal.
func valid(b []byte) bool {
	var stack [MaxDepth]byte // the open containers, '{' or '['
	depth := 0
	i := skipSpaceBytes(b, 0)
	const (
		wantValue = iota // a value starts at b[i]
		wantKey          // an object key starts at b[i]
		after            // a value ended before b[i]
	)
	state := wantValue
	for {
		switch state {
		case wantValue:
			if i >= len(b) {
				return false
			}
			switch c := b[i]; c {
			case '{', '[':
				if depth == MaxDepth {
					return false
				}
				stack[depth] = c
				depth++
				i = skipSpaceBytes(b, i+1)
				switch {
				case i < len(b) && b[i] == c+2: // '{'+2 is '}', '['+2 is ']'
					depth--
					i++
					state = after
				case c == '{':
					state = wantKey
				}
				continue
			case '"':
				var ok bool
				if i, ok = scanString(b, i); !ok {
					return false
				}
			case 't':
				if !hasLiteral(b, i, "true") {
					return false
				}
				i += 4
			case 'f':
				if !hasLiteral(b, i, "false") {
					return false
				}
				i += 5
			case 'n':
				if !hasLiteral(b, i, "null") {
					return false
				}
				i += 4
			default:
				var ok bool
				if i, ok = scanNumber(b, i); !ok {
					return false
				}
			}
			state = after
		case wantKey:
			if i >= len(b) || b[i] != '"' {
				return false
			}
			var ok bool
			if i, ok = scanString(b, i); !ok {
				return false
			}
			if i = skipSpaceBytes(b, i); i >= len(b) || b[i] != ':' {
				return false
			}
			i = skipSpaceBytes(b, i+1)
			state = wantValue
		case after:
			i = skipSpaceBytes(b, i)
			if depth == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			switch open := stack[depth-1]; b[i] {
			case ',':
				i = skipSpaceBytes(b, i+1)
				if open == '{' {
					state = wantKey
				} else {
					state = wantValue
				}
			case open + 2:
				depth--
				i++
			default:
				return false
			}
		}
	}
}

func skipSpaceBytes(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// scanString returns the end of the JSON string starting at b[i] (a
// quote): escapes must be JSON's, control bytes are refused.
func scanString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c == '\\':
			j++
			if j >= len(b) {
				return 0, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-j < 5 {
					return 0, false
				}
				for _, h := range b[j+1 : j+5] {
					if !isHex(h) {
						return 0, false
					}
				}
				j += 4
			default:
				return 0, false
			}
		case c < 0x20:
			return 0, false
		}
	}
	return 0, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanNumber returns the end of the JSON number starting at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return 0, false
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}
