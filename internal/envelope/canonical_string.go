package envelope

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// parseString reads the JSON string at p.pos and appends its canonical form, quotes included, to p.lits.
func (p *parser) parseString() (span, error) {
	start := int32(len(p.lits))
	open := p.pos
	p.pos++ // opening quote
	p.lits = append(p.lits, '"')
	for {
		// Copy the longest run that needs no rewriting in one go; that is nearly all of a typical body.
		run := p.pos
		for run < len(p.in) {
			c := p.in[run]
			if c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
				break
			}
			run++
		}
		p.lits = append(p.lits, p.in[p.pos:run]...)
		p.pos = run
		if p.pos >= len(p.in) {
			return span{}, p.syntaxError(open, "unterminated string")
		}
		switch c := p.in[p.pos]; {
		case c == '"':
			p.pos++
			p.lits = append(p.lits, '"')
			return span{start, int32(len(p.lits))}, nil
		case c == '\\':
			if err := p.parseEscape(); err != nil {
				return span{}, err
			}
		case c < 0x20:
			return span{}, p.syntaxError(p.pos, "control character %#02x in string", c)
		default:
			r, size := utf8.DecodeRune(p.in[p.pos:])
			if r == utf8.RuneError && size <= 1 {
				p.lits = utf8.AppendRune(p.lits, utf8.RuneError)
				p.pos += invalidUTF8Length(p.in[p.pos:])
				continue
			}
			p.lits = appendCodePoint(p.lits, r)
			p.pos += size
		}
	}
}

func (p *parser) parseEscape() error {
	at := p.pos
	if p.pos+1 >= len(p.in) {
		return p.syntaxError(at, "unterminated escape")
	}
	c := p.in[p.pos+1]
	p.pos += 2
	switch c {
	case '"':
		p.lits = append(p.lits, '\\', '"')
	case '\\':
		p.lits = append(p.lits, '\\', '\\')
	case '/':
		// JSON.stringify never escapes the solidus.
		p.lits = append(p.lits, '/')
	case 'b', 'f', 'n', 'r', 't':
		p.lits = append(p.lits, '\\', c)
	case 'u':
		u, ok := p.hex4(p.pos)
		if !ok {
			return p.syntaxError(at, "bad \\u escape")
		}
		p.pos += 4
		switch {
		case u >= 0xD800 && u <= 0xDBFF:
			// A high surrogate joins a following low surrogate escape into one code point; alone it stays a
			// lone surrogate, which well-formed JSON.stringify writes back as an escape.
			if p.pos+6 <= len(p.in) && p.in[p.pos] == '\\' && p.in[p.pos+1] == 'u' {
				if lo, ok := p.hex4(p.pos + 2); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					p.pos += 6
					p.lits = utf8.AppendRune(p.lits, 0x10000+(rune(u)-0xD800)<<10+(rune(lo)-0xDC00))
					return nil
				}
			}
			p.lits = appendUnicodeEscape(p.lits, u)
		case u >= 0xDC00 && u <= 0xDFFF:
			p.lits = appendUnicodeEscape(p.lits, u)
		default:
			p.lits = appendCodePoint(p.lits, rune(u))
		}
	default:
		return p.syntaxError(at, "bad escape \\%c", c)
	}
	return nil
}

func (p *parser) hex4(at int) (uint16, bool) {
	if at+4 > len(p.in) {
		return 0, false
	}
	var v uint16
	for _, c := range p.in[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint16(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint16(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint16(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// appendCodePoint appends r as JSON.stringify writes it inside a string: only the quote, the backslash
// and C0 controls are escaped. HTML characters and U+2028/U+2029 stay raw, unlike Go's encoding/json.
func appendCodePoint(dst []byte, r rune) []byte {
	switch r {
	case '"':
		return append(dst, '\\', '"')
	case '\\':
		return append(dst, '\\', '\\')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	if r < 0x20 {
		return appendUnicodeEscape(dst, uint16(r))
	}
	return utf8.AppendRune(dst, r)
}

func appendUnicodeEscape(dst []byte, u uint16) []byte {
	return append(dst, '\\', 'u', hexDigits[u>>12], hexDigits[u>>8&0xF], hexDigits[u>>4&0xF], hexDigits[u&0xF])
}

// appendJSString appends s as a quoted JSON string, as JSON.stringify would print the string a receiver
// decodes from s's bytes.
func appendJSString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
			i += invalidUTF8Length([]byte(s[i:min(len(s), i+4)]))
			continue
		}
		dst = appendCodePoint(dst, r)
		i += size
	}
	return append(dst, '"')
}

// invalidUTF8Length returns how many bytes at the start of b, which do not begin a valid UTF-8
// sequence, a WHATWG decoder replaces with a single U+FFFD: the maximal prefix of a valid sequence, or
// one byte. Node decodes request bodies this way, and Go's decoder (one U+FFFD per byte) does not.
func invalidUTF8Length(b []byte) int {
	lower, upper := byte(0x80), byte(0xBF)
	var need int
	switch lead := b[0]; {
	case lead >= 0xC2 && lead <= 0xDF:
		need = 1
	case lead == 0xE0:
		need, lower = 2, 0xA0
	case lead == 0xED:
		need, upper = 2, 0x9F
	case lead >= 0xE1 && lead <= 0xEF:
		need = 2
	case lead == 0xF0:
		need, lower = 3, 0x90
	case lead == 0xF4:
		need, upper = 3, 0x8F
	case lead >= 0xF1 && lead <= 0xF3:
		need = 3
	default:
		return 1
	}
	for i := 1; i <= need; i++ {
		if i >= len(b) || b[i] < lower || b[i] > upper {
			return i
		}
		lower, upper = 0x80, 0xBF
	}
	// Unreachable for input utf8.DecodeRune rejected; consume it all rather than loop forever.
	return need + 1
}
