package accesslog

import "time"

// timeCache parses log timestamps by hand and remembers the last one: the
// lines of a busy log share their second, so most lines cost a compare of
// some 26 bytes. It also keeps the few fixed-offset locations a log uses, so
// that building a time.Time does not allocate.
type timeCache struct {
	text  [maxCachedTime]byte
	textN int // 0 when nothing is cached
	t     time.Time

	zones    [4]zoneLoc
	nextZone int
}

type zoneLoc struct {
	offset int // seconds east of UTC
	loc    *time.Location
}

// maxCachedTime bounds the timestamp text the cache keeps; longer texts
// (ISO 8601 with nanoseconds is 35 bytes) are parsed every time.
const maxCachedTime = 40

func (c *timeCache) lookup(s string) (time.Time, bool) {
	if c.textN != 0 && len(s) == c.textN && string(c.text[:c.textN]) == s {
		return c.t, true
	}
	return time.Time{}, false
}

func (c *timeCache) store(s string, t time.Time) {
	if len(s) > maxCachedTime {
		return
	}
	c.textN = copy(c.text[:], s)
	c.t = t
}

// location returns a fixed zone for offset, from the cache when possible.
func (c *timeCache) location(offset int) *time.Location {
	if offset == 0 {
		return time.UTC
	}
	for _, z := range c.zones {
		if z.loc != nil && z.offset == offset {
			return z.loc
		}
	}
	loc := time.FixedZone("", offset)
	c.zones[c.nextZone] = zoneLoc{offset: offset, loc: loc}
	c.nextZone = (c.nextZone + 1) % len(c.zones)
	return loc
}

// parseLocal parses nginx $time_local and Apache %t (without the brackets):
// "10/Oct/2026:13:55:36 +0200".
func (c *timeCache) parseLocal(s string) (time.Time, bool) {
	if t, ok := c.lookup(s); ok {
		return t, true
	}
	if len(s) != len("10/Oct/2026:13:55:36 +0200") ||
		s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' || s[20] != ' ' {
		return time.Time{}, false
	}
	mon := month(s[3:6])
	day, ok1 := digits(s[0:2])
	year, ok2 := digits(s[7:11])
	hour, ok3 := digits(s[12:14])
	minute, ok4 := digits(s[15:17])
	sec, ok5 := digits(s[18:20])
	offset, ok6 := zoneOffset(s[21:])
	if mon == 0 || !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	t, ok := c.build(year, mon, day, hour, minute, sec, 0, offset)
	if ok {
		c.store(s, t)
	}
	return t, ok
}

// parseISO parses nginx $time_iso8601, an RFC 3339 time:
// "2026-10-10T13:55:36+02:00", also with 'Z' and fractional seconds.
func (c *timeCache) parseISO(s string) (time.Time, bool) {
	if t, ok := c.lookup(s); ok {
		return t, true
	}
	const dateTime = len("2026-10-10T13:55:36")
	if len(s) < dateTime+1 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
		s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	mon, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	rest := s[dateTime:]
	nsec := 0
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		var ok bool
		if nsec, ok = fraction(rest[1:n]); !ok {
			return time.Time{}, false
		}
		rest = rest[n:]
	}
	var offset int
	switch {
	case rest == "Z" || rest == "z":
	default:
		var ok bool
		if offset, ok = zoneOffset(rest); !ok {
			return time.Time{}, false
		}
	}
	t, ok := c.build(year, mon, day, hour, minute, sec, nsec, offset)
	if ok {
		c.store(s, t)
	}
	return t, ok
}

// parseMsec parses nginx $msec, Unix seconds with milliseconds:
// "1700000000.123". The time is in UTC.
func parseMsec(s string) (time.Time, bool) {
	dot := len(s)
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			dot = i
			break
		}
	}
	if dot == 0 || dot > 11 {
		return time.Time{}, false
	}
	var sec int64
	for i := 0; i < dot; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		sec = sec*10 + int64(c-'0')
	}
	nsec := 0
	if dot < len(s) {
		var ok bool
		if nsec, ok = fraction(s[dot+1:]); !ok {
			return time.Time{}, false
		}
	}
	return time.Unix(sec, int64(nsec)).UTC(), true
}

// build checks the fields of a civil time and returns it in a fixed zone.
// It does the calendar arithmetic itself: cheaper than time.Date, and it
// rejects out-of-range fields instead of normalising them.
func (c *timeCache) build(year, mon, day, hour, minute, sec, nsec, offset int) (time.Time, bool) {
	if year < 1 || mon < 1 || mon > 12 || day < 1 || day > daysIn(year, mon) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	unix := daysFromCivil(year, mon, day)*86400 + int64(hour*3600+minute*60+sec) - int64(offset)
	return time.Unix(unix, int64(nsec)).In(c.location(offset)), true
}

// daysFromCivil returns the number of days from 1970-01-01 to the given
// proleptic Gregorian date (Howard Hinnant's algorithm); year >= 1.
func daysFromCivil(year, mon, day int) int64 {
	y := year
	if mon <= 2 {
		y--
	}
	era := y / 400 // y >= 0
	yoe := y - era*400
	mp := (mon + 9) % 12
	doy := (153*mp+2)/5 + day - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

func daysIn(year, mon int) int {
	switch mon {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	default:
		return 31
	}
}

// month returns 1 to 12 for "Jan" to "Dec", 0 otherwise.
func month(s string) int {
	switch s {
	case "Jan":
		return 1
	case "Feb":
		return 2
	case "Mar":
		return 3
	case "Apr":
		return 4
	case "May":
		return 5
	case "Jun":
		return 6
	case "Jul":
		return 7
	case "Aug":
		return 8
	case "Sep":
		return 9
	case "Oct":
		return 10
	case "Nov":
		return 11
	case "Dec":
		return 12
	}
	return 0
}

// digits parses a short all-digit field.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

// fraction parses the digits after a decimal point into nanoseconds,
// ignoring digits past the ninth.
func fraction(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if i < 9 {
			n = n*10 + int(c-'0')
		}
	}
	for i := len(s); i < 9; i++ {
		n *= 10
	}
	return n, true
}

// zoneOffset parses "+0200" or "-07:00" into seconds east of UTC.
func zoneOffset(s string) (int, bool) {
	mm := 3
	switch {
	case len(s) == 6 && s[3] == ':':
		mm = 4
	case len(s) != 5:
		return 0, false
	}
	if s[0] != '+' && s[0] != '-' {
		return 0, false
	}
	h, ok1 := digits(s[1:3])
	m, ok2 := digits(s[mm : mm+2])
	if !ok1 || !ok2 || h > 23 || m > 59 {
		return 0, false
	}
	off := h*3600 + m*60
	if s[0] == '-' {
		off = -off
	}
	return off, true
}
