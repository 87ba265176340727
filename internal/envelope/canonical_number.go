package envelope

import (
	"math"
	"strconv"
)

// parseNumber validates the JSON number at p.pos and appends the text JavaScript prints for it.
func (p *parser) parseNumber() error {
	start := p.pos
	i := p.pos
	digits := func() int {
		n := 0
		for i < len(p.in) && p.in[i] >= '0' && p.in[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if p.in[i] == '-' {
		i++
	}
	intStart := i
	switch n := digits(); {
	case n == 0:
		return p.syntaxError(i, "number without digits")
	case n > 1 && p.in[intStart] == '0':
		return p.syntaxError(intStart, "number with a leading zero")
	}
	simple := true
	if i < len(p.in) && p.in[i] == '.' {
		i++
		simple = false
		if digits() == 0 {
			return p.syntaxError(i, "number without digits after '.'")
		}
	}
	if i < len(p.in) && (p.in[i] == 'e' || p.in[i] == 'E') {
		i++
		simple = false
		if i < len(p.in) && (p.in[i] == '+' || p.in[i] == '-') {
			i++
		}
		if digits() == 0 {
			return p.syntaxError(i, "number without exponent digits")
		}
	}
	p.pos = i
	text := p.in[start:i]

	// Integers of up to 15 digits are exact doubles that JavaScript prints as written, so skip the
	// float round trip for the ids and counts that make up most bodies. "-0" is the one exception.
	if simple && i-intStart <= 15 {
		if string(text) == "-0" {
			text = text[1:]
		}
		p.lits = append(p.lits, text...)
		return nil
	}
	// ParseFloat's range error still returns what JavaScript computes (±Inf on overflow, 0 on
	// underflow), so the error carries no information here: the grammar was checked above.
	f, _ := strconv.ParseFloat(string(text), 64)
	p.lits = appendJSNumber(p.lits, f)
	return nil
}

// appendJSNumber appends f as ECMAScript's Number::toString prints it, which is also what
// JSON.stringify prints, except that non-finite numbers become null.
func appendJSNumber(dst []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 0) || math.IsNaN(f):
		return append(dst, "null"...)
	case f == 0:
		return append(dst, '0') // covers -0
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// Go's shortest formatting picks the same digits as ECMAScript (the shortest that round-trip,
	// closest to the exact value); only the layout differs, so lay them out by the spec's rules.
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // d[.ddd]e±XX
	mant, exp := e, 0
	for j, c := range e {
		if c == 'e' {
			mant = e[:j]
			x, _ := strconv.Atoi(string(e[j+1:]))
			exp = x
			break
		}
	}
	var ds [24]byte
	digits := ds[:0]
	for _, c := range mant {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	k := len(digits)
	n := exp + 1 // position of the decimal point relative to the digits
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}
