package store

import (
	"encoding/json"
	"strconv"
)

// Leaf is the event's canonical encoding: the bytes its Merkle leaf
// hashes. It is built from the stored columns exactly (time in
// microseconds, details as the stored text), so anyone can recompute it
// from a database dump or an evidence bundle. Field order is fixed;
// strings are encoded as encoding/json encodes them.
func (e *AuditEvent) Leaf() []byte {
	details := string(e.Details)
	if details == "" {
		details = "{}"
	}
	b := make([]byte, 0, 192+len(e.ID)+len(e.Type)+len(e.ActorID)+len(e.ActorName)+len(e.Subject)+len(e.RequestID)+len(details)*11/10)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = appendField(b, `,"id":`, e.ID)
	b = append(b, `,"time_us":`...)
	b = strconv.AppendInt(b, e.Time.UnixMicro(), 10)
	b = appendField(b, `,"type":`, e.Type)
	b = appendField(b, `,"actor_id":`, e.ActorID)
	b = appendField(b, `,"actor_name":`, e.ActorName)
	b = appendField(b, `,"subject":`, e.Subject)
	b = appendField(b, `,"outcome":`, e.Outcome)
	b = appendField(b, `,"request_id":`, e.RequestID)
	b = appendField(b, `,"source_addr":`, e.SourceAddr)
	b = appendField(b, `,"details":`, details)
	return append(b, "}\n"...)
}

// appendField appends name and s as a JSON string, exactly as
// json.Marshal would write it: a fast path for plain printable ASCII
// (no quote, backslash or HTML-escaped character), json.Marshal otherwise.
func appendField(b []byte, name, s string) []byte {
	b = append(b, name...)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
