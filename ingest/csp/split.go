package csp

import "encoding/json"

// splitObject splits a JSON object that is already known to be valid into
// its members, without copying: the values are sub-slices of raw, exactly
// as json.Unmarshal into a map[string]json.RawMessage would give them (a
// repeated key keeps its last value). It declines (ok false) a key that
// holds an escape or a non-ASCII byte, which json.Unmarshal would rewrite;
// the caller then uses json.Unmarshal. Reports are small flat objects: this
// is the public listener's hot path.
func splitObject(raw []byte) (m map[string]json.RawMessage, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	m = make(map[string]json.RawMessage, 12)
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return m, true
	}
	for i < len(raw) {
		if raw[i] != '"' {
			return nil, false
		}
		start := i + 1
		j := start
		for j < len(raw) && raw[j] != '"' {
			if c := raw[j]; c == '\\' || c >= 0x80 {
				return nil, false
			}
			j++
		}
		if j >= len(raw) {
			return nil, false
		}
		key := string(raw[start:j])
		i = skipSpace(raw, j+1)
		if i >= len(raw) || raw[i] != ':' {
			return nil, false
		}
		i = skipSpace(raw, i+1)
		end, ok := skipValue(raw, i)
		if !ok {
			return nil, false
		}
		m[key] = raw[i:end:end]
		var last bool
		if i, last, ok = next(raw, end, '}'); !ok || last {
			return m, ok
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
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
func skipString(b []byte, i int) (int, bool) {
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

// splitArray splits a JSON array that is already known to be valid into
// its elements, sub-slices of raw without surrounding space, as
// json.Unmarshal into a []json.RawMessage would give them.
func splitArray(raw []byte) ([]json.RawMessage, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, false
	}
	elems := []json.RawMessage{}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return elems, true
	}
	for i < len(raw) {
		end, ok := skipValue(raw, i)
		if !ok {
			return nil, false
		}
		elems = append(elems, raw[i:end:end])
		var last bool
		if i, last, ok = next(raw, end, ']'); !ok || last {
			return elems, ok
		}
	}
	return nil, false
}

// next reads what follows a member or element that ends at b[i]: a comma
// (the next one starts at the returned index) or closer (last is true).
func next(b []byte, i int, closer byte) (start int, last, ok bool) {
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
