package syslog

import (
	"sync/atomic"
	"time"
)

// futureSlack is how far ahead of the receiver's clock an RFC 3164
// timestamp may be and still be placed in the current year rather than the
// previous one. It covers senders whose clock or zone runs ahead.
const futureSlack = 7 * 24 * time.Hour

// months are the RFC 3164 month abbreviations, January first.
var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parse3164Time parses an RFC 3164 timestamp, "Mmm dd hh:mm:ss", at the
// start of b. The day may be space-padded ("Nov  3"), zero-padded or a lone
// digit. It returns the number of bytes used and ok; the timestamp must be
// followed by a space or the end of b. The time is in now's zone and in the
// year that puts it at or before now (plus futureSlack), trying the next,
// current and previous year in turn, so that a December message read in
// January lands in the previous year. t is zero when no such year has the
// date (29 Feb outside leap years).
func parse3164Time(b []byte, now time.Time) (t time.Time, n int, ok bool) {
	if len(b) < 14 || b[3] != ' ' {
		return time.Time{}, 0, false
	}
	month := 0
	for i, m := range months {
		if b[0] == m[0] && b[1] == m[1] && b[2] == m[2] {
			month = i + 1
			break
		}
	}
	if month == 0 {
		return time.Time{}, 0, false
	}
	i := 4
	if b[i] == ' ' { // space-padded day
		i++
	}
	day := 0
	start := i
	for i < len(b) && i-start < 2 && isDigit(b[i]) {
		day = day*10 + int(b[i]-'0')
		i++
	}
	if i == start || day < 1 || day > 31 || i >= len(b) || b[i] != ' ' {
		return time.Time{}, 0, false
	}
	i++
	if len(b)-i < 8 || b[i+2] != ':' || b[i+5] != ':' {
		return time.Time{}, 0, false
	}
	hh, ok1 := num2(b[i:])
	mm, ok2 := num2(b[i+3:])
	ss, ok3 := num2(b[i+6:])
	i += 8
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 60 || (i < len(b) && b[i] != ' ') {
		return time.Time{}, 0, false
	}
	if day > daysIn(month, 2000) { // 2000 was a leap year: the most days any year has
		return time.Time{}, 0, false
	}
	loc := now.Location()
	limit := now.Add(futureSlack)
	for y := now.Year() + 1; y >= now.Year()-1; y-- {
		if day > daysIn(month, y) {
			continue
		}
		c := time.Date(y, time.Month(month), day, hh, mm, ss, 0, loc)
		if !c.After(limit) {
			return c, i, true
		}
	}
	return time.Time{}, i, true
}

// parseRFC3339 parses a whole RFC 3339 timestamp,
// "2026-11-23T10:00:00.003Z" or with a "+01:00" offset, with up to nine
// fraction digits. It does not allocate: the zone of an offset comes from a
// cache.
func parseRFC3339(b []byte) (time.Time, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	y1, ok1 := num2(b)
	y2, ok2 := num2(b[2:])
	mo, ok3 := num2(b[5:])
	d, ok4 := num2(b[8:])
	hh, ok5 := num2(b[11:])
	mm, ok6 := num2(b[14:])
	ss, ok7 := num2(b[17:])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !ok7 {
		return time.Time{}, false
	}
	year := y1*100 + y2
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, year) || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, false
	}
	i := 19
	nsec := 0
	if b[i] == '.' {
		i++
		start := i
		scale := 100000000
		for i < len(b) && isDigit(b[i]) {
			if i-start == 9 {
				return time.Time{}, false
			}
			nsec += int(b[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == start {
			return time.Time{}, false
		}
	}
	rest := b[i:]
	var loc *time.Location
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
		loc = time.UTC
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := num2(rest[1:])
		om, okm := num2(rest[4:])
		if !okh || !okm || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		off := oh*60 + om
		if rest[0] == '-' {
			off = -off
		}
		loc = zone(off)
	default:
		return time.Time{}, false
	}
	return time.Date(year, time.Month(mo), d, hh, mm, ss, nsec, loc), true
}

// maxOffset is the largest zone offset RFC 3339 can write, in minutes.
const maxOffset = 23*60 + 59

// zones caches one fixed zone per offset in minutes, indexed by offset +
// maxOffset, so that parsing a timestamp does not allocate.
var zones [2*maxOffset + 1]atomic.Pointer[time.Location]

// zone returns a fixed zone offset minutes east of UTC; UTC itself for 0.
func zone(minutes int) *time.Location {
	if minutes == 0 {
		return time.UTC
	}
	p := &zones[minutes+maxOffset]
	if loc := p.Load(); loc != nil {
		return loc
	}
	loc := time.FixedZone("", minutes*60)
	if !p.CompareAndSwap(nil, loc) {
		return p.Load()
	}
	return loc
}

// daysIn returns the number of days of month (1-12) in year.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// num2 parses two decimal digits at the start of b.
func num2(b []byte) (int, bool) {
	if len(b) < 2 || !isDigit(b[0]) || !isDigit(b[1]) {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
