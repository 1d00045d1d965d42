package store

import (
	"strconv"
	"unicode/utf8"
)

// Leaf is the event's canonical encoding: the bytes its Merkle leaf
// hashes. It is built from the stored columns exactly (time in
// microseconds, details as the stored text), so anyone can recompute it
// from a database dump or an evidence bundle. Field order is fixed;
// strings are encoded as encoding/json encodes them.
func (e *AuditEvent) Leaf() []byte {
	return appendLeaf(nil, e.Seq, e.Time.UnixMicro(), e.ID, e.Type, e.ActorID, e.ActorName, e.Subject,
		e.Outcome, e.RequestID, e.SourceAddr, string(e.Details))
}

// LeafRow is an audit event's stored columns as raw bytes, for reading
// the log without building an AuditEvent per row (audit verify).
type LeafRow struct {
	Seq, TimeUS                                                           int64
	ID, Type, ActorID, ActorName, Subject, Outcome, RequestID, SourceAddr []byte
	Details                                                               []byte
}

// AppendLeaf appends the row's Leaf encoding to b.
func (r *LeafRow) AppendLeaf(b []byte) []byte {
	return appendLeaf(b, r.Seq, r.TimeUS, r.ID, r.Type, r.ActorID, r.ActorName, r.Subject,
		r.Outcome, r.RequestID, r.SourceAddr, r.Details)
}

func appendLeaf[T string | []byte](b []byte, seq, timeUS int64, id, typ, actorID, actorName, subject, outcome, requestID, sourceAddr, details T) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"time_us":`...)
	b = strconv.AppendInt(b, timeUS, 10)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"actor_id":`...)
	b = appendJSONString(b, actorID)
	b = append(b, `,"actor_name":`...)
	b = appendJSONString(b, actorName)
	b = append(b, `,"subject":`...)
	b = appendJSONString(b, subject)
	b = append(b, `,"outcome":`...)
	b = appendJSONString(b, outcome)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, requestID)
	b = append(b, `,"source_addr":`...)
	b = appendJSONString(b, sourceAddr)
	b = append(b, `,"details":`...)
	if len(details) == 0 {
		b = append(b, `"{}"`...)
	} else {
		b = appendJSONString(b, details)
	}
	return append(b, "}\n"...)
}

const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes encoding/json writes as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as encoding/json's Marshal writes a string
// (HTML-safe escaping, U+2028/U+2029 escaped, invalid UTF-8 replaced by
// U+FFFD), without allocating. FuzzLeaf holds it to json.Marshal.
func appendJSONString[T string | []byte](b []byte, s T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		var r rune
		var size int
		switch v := any(s).(type) {
		case string:
			r, size = utf8.DecodeRuneInString(v[i:])
		case []byte:
			r, size = utf8.DecodeRune(v[i:])
		}
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
