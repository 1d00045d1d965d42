package api

import "github.com/airlockhq/airlock"

// jsonKind names the JSON value that starts with c.
func jsonKind(c byte) string {
	switch c {
	case 'n':
		return "null"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number or other value"
}

// loneSurrogate refuses a \u escape in a JSON string that is half of a
// UTF-16 surrogate pair: a high surrogate (\ud800-\udbff) not followed at
// once by a low one (\udc00-\udfff), or a low one on its own. It looks
// at escapes inside strings only, and skips every other escape whole, so
// an escaped backslash followed by "u" (\\ud800) is not an escape.
// Other syntax errors are left to the decoder.
func loneSurrogate(body []byte) error {
	inString := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(body) {
				return nil
			}
			if body[i+1] != 'u' {
				i++ // the escaped character: \" does not end the string
				continue
			}
			r, ok := hex4(body[i+2:])
			if !ok {
				return nil // malformed: the decoder says so
			}
			switch {
			case r >= 0xdc00 && r <= 0xdfff:
				return lonely(body[i:i+6], i)
			case r >= 0xd800 && r <= 0xdbff:
				next := body[i+6:]
				if len(next) < 2 || next[0] != '\\' || next[1] != 'u' {
					return lonely(body[i:i+6], i)
				}
				if lo, ok := hex4(next[2:]); !ok || lo < 0xdc00 || lo > 0xdfff {
					return lonely(body[i:i+6], i)
				}
				i += 11 // both escapes
			default:
				i += 5
			}
		}
	}
	return nil
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func lonely(esc []byte, at int) error {
	return airlock.Errorf(airlock.Invalid, "request body: %s at byte %d is half of a UTF-16 surrogate pair; "+
		"send the character as UTF-8 or as a high and low surrogate pair", esc, at)
}
