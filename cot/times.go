package cot

import (
	"fmt"
	"time"
)

// ParseTime reads a CoT time (2016-01-13T20:43:37.842Z: RFC 3339 with fractional seconds
// optional and of any length, 'Z' or a numeric offset) without converting b to a string.
// ok is false, and t zero, for anything else.
func ParseTime(b []byte) (t time.Time, ok bool) {
	if len(b) < len("2006-01-02T15:04:05Z") ||
		b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := b[19:]
	nsec := 0
	if rest[0] == '.' {
		k := 1
		for scale := 100_000_000; k < len(rest) && rest[k] >= '0' && rest[k] <= '9'; k++ {
			nsec += int(rest[k]-'0') * scale
			scale /= 10
		}
		if k == 1 {
			return time.Time{}, false
		}
		rest = rest[k:]
	}
	var offset int
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := num(rest[1:3])
		om, okm := num(rest[4:6])
		if !okh || !okm || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// num reads a run of ASCII digits.
func num(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

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

// Bounds of a plausible event time, checked by Header.CheckTimes (and by takproto for v1
// events). They are wide on purpose: they exist to catch units mistaken (TAK Server's load
// tester in protobuf mode sends microseconds where milliseconds belong, which land tens of
// thousands of years ahead) and garbage, not clocks that are a little off.
const (
	// TimeSkew is how far from now time and start may lie, either way, and how far in the
	// past stale may lie.
	TimeSkew = 366 * 24 * time.Hour
	// StaleAhead is how far into the future stale may lie: long-lived items (a route, a
	// mission marker) are stamped stale years ahead.
	StaleAhead = 10 * TimeSkew
)

// timeAttr is a set of the <event> time attributes, as bits. It names attributes, not
// states: no transitions.
type timeAttr uint8

const (
	timeAttrTime timeAttr = 1 << iota
	timeAttrStart
	timeAttrStale
)

func (a timeAttr) String() string {
	var s []byte
	for i, name := range [...]string{"time", "start", "stale"} {
		if a&(1<<i) != 0 {
			if len(s) > 0 {
				s = append(s, ',')
			}
			s = append(s, name...)
		}
	}
	return string(s)
}

// CheckTimes reports whether the event h was scanned from has plausible times at now: every
// time attribute that is present can be read, time and start lie within TimeSkew of now,
// and stale lies between TimeSkew before now and StaleAhead after it. Absent attributes pass
// (the router does not need them). The error wraps ErrImplausibleTime and names the
// attribute. It does not allocate unless it fails.
func (h *Header) CheckTimes(now time.Time) error {
	if h.unreadable != 0 {
		return fmt.Errorf("%w: %s unreadable", ErrImplausibleTime, h.unreadable)
	}
	return checkTimes(now, h.Time, h.Start, h.Stale)
}

func checkTimes(now, tm, start, stale time.Time) error {
	lo, hi := now.Add(-TimeSkew), now.Add(TimeSkew)
	for i, t := range [...]time.Time{tm, start} {
		if !t.IsZero() && (t.Before(lo) || t.After(hi)) {
			return fmt.Errorf("%w: %s %s is more than %v from now", ErrImplausibleTime,
				timeAttr(1<<i), t.Format(time.RFC3339), TimeSkew)
		}
	}
	if !stale.IsZero() && (stale.Before(lo) || stale.After(now.Add(StaleAhead))) {
		return fmt.Errorf("%w: stale %s outside [now-%v, now+%v]", ErrImplausibleTime,
			stale.Format(time.RFC3339), TimeSkew, StaleAhead)
	}
	return nil
}
