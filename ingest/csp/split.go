package csp

// The splitters below walk JSON text that decodeTop already found valid,
// in one pass and without copies: reports are small flat objects, and this
// is the public listener's hot path. On text that is not valid JSON they
// report failure rather than guess.

// eachMember calls fn with the key and the raw value (a sub-string of raw)
// of every member of the JSON object raw, in order. A key with escapes is
// decoded first, as encoding/json would.
func eachMember(raw string, fn func(key, value string)) bool {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return true
	}
	for i < len(raw) {
		if raw[i] != '"' {
			return false
		}
		end, ok := skipString(raw, i)
		if !ok {
			return false
		}
		key := raw[i+1 : end-1]
		if !plain(key) {
			if key, ok = decodeString(raw[i:end]); !ok {
				return false
			}
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return false
		}
		i = skipSpace(raw, i+1)
		if end, ok = skipValue(raw, i); !ok {
			return false
		}
		fn(key, raw[i:end])
		var last bool
		if i, last, ok = next(raw, end, '}'); !ok || last {
			return ok
		}
	}
	return false
}

// span is the place of one array element in the text split: [start, end).
type span struct{ start, end int }

// splitArray returns where the elements of the JSON array raw are, without
// the space around them, as json.Unmarshal into a []json.RawMessage would
// give them.
func splitArray(raw string) ([]span, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, false
	}
	elems := []span{}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return elems, true
	}
	for i < len(raw) {
		end, ok := skipValue(raw, i)
		if !ok {
			return nil, false
		}
		elems = append(elems, span{i, end})
		var last bool
		if i, last, ok = next(raw, end, ']'); !ok || last {
			return elems, ok
		}
	}
	return nil, false
}

func skipSpace(b string, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at b[i].
func skipValue(b string, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return 0, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	default: // number, true, false, null
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return j, j > i
			}
			j++
		}
		return j, j > i
	}
}

// skipString returns the end of the string starting at b[i] (a quote).
func skipString(b string, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// next reads what follows a member or element that ends at b[i]: a comma
// (the next one starts at the returned index) or closer (last is true).
func next(b string, i int, closer byte) (start int, last, ok bool) {
	i = skipSpace(b, i)
	switch {
	case i >= len(b):
		return 0, false, false
	case b[i] == ',':
		return skipSpace(b, i+1), false, true
	case b[i] == closer:
		return i + 1, true, true
	}
	return 0, false, false
}
