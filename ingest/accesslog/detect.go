package accesslog

import (
	"bytes"

	"github.com/vigil-soc/vigil/event"
)

// DetectFormat looks at sample lines, typically the first few of a file, and
// returns the format most of them parse as, or FormatUnknown if none does.
//
// JSON and text lines are told apart by parsing; when as many parse one way
// as the other, text wins. Among text lines, nginx-main is chosen when every
// line that parses as combined also has the quoted X-Forwarded-For field.
// nginx and Apache combined lines have the same shape, so the choice between
// them rests on what each server writes differently: Apache writes "-" for a
// zero byte count, backslash escapes such as \" and \\, lower-case \xhh,
// and sometimes an ident; nginx writes 0 and upper-case \xHH. With no
// evidence either way, or as much for each, the answer is nginx.
func DetectFormat(lines [][]byte) Format {
	var (
		ev                      event.Event
		jsonN, textN, mainN     int
		apacheVotes, nginxVotes int
		pJSON, pCombined, pMain = NewParser(FormatNginxJSON), NewParser(FormatNginxCombined), NewParser(FormatNginxMain)
	)
	// A probe (a refused request) parses in any text format alike: it is no
	// evidence.
	entry := func(p *Parser, line []byte) bool { return p.Parse(line, &ev) == nil && ev.Action == "" }
	for _, line := range lines {
		line = trimSpace(line)
		if entry(pJSON, line) {
			jsonN++
			continue
		}
		if !entry(pCombined, line) {
			continue
		}
		textN++
		switch {
		case ev.BodyBytes < 0:
			apacheVotes++
		case ev.BodyBytes == 0:
			nginxVotes++
		}
		a, n := escapeVotes(line)
		apacheVotes += a
		nginxVotes += n
		if identSet(line) {
			apacheVotes++
		}
		if entry(pMain, line) {
			mainN++
		}
	}
	switch {
	case jsonN == 0 && textN == 0:
		return FormatUnknown
	case jsonN > textN:
		return FormatNginxJSON
	case apacheVotes > nginxVotes:
		return FormatApacheCombined
	case mainN == textN:
		return FormatNginxMain
	default:
		return FormatNginxCombined
	}
}

// escapeVotes looks at a text line's backslash escapes: nginx writes only
// \xHH with upper-case hex digits; Apache writes \" \\ \n and the like, and
// \xhh with lower-case ones.
func escapeVotes(line []byte) (apache, nginx int) {
	for {
		bs := bytes.IndexByte(line, '\\')
		if bs < 0 || bs+1 >= len(line) {
			return apache, nginx
		}
		line = line[bs+1:]
		if line[0] != 'x' {
			apache++
			line = line[1:] // an escaped backslash must not count twice
			continue
		}
		if len(line) >= 3 {
			for _, c := range line[1:3] {
				switch {
				case c >= 'a' && c <= 'f':
					apache++
				case c >= 'A' && c <= 'F':
					nginx++
				}
			}
		}
	}
}

// identSet reports whether the second field of a text line (Apache %l, "-"
// in nginx) is something other than "-".
func identSet(line []byte) bool {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return false
	}
	rest := line[sp+1:]
	return !(len(rest) >= 2 && rest[0] == '-' && rest[1] == ' ')
}

// DetectFormatData detects the format of a file from the start of its data:
// DetectFormat over its first 32 lines.
func DetectFormatData(data []byte) Format {
	var sample [][]byte
	for len(data) > 0 && len(sample) < 32 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		sample = append(sample, line)
	}
	return DetectFormat(sample)
}
