package store

import (
	"encoding/json"
	"strconv"
)

// Leaf is the event's canonical encoding: the bytes its Merkle leaf
// hashes. It is built from the stored columns exactly (time in
// microseconds, details as the stored text), so anyone can recompute it
// from a database dump or an evidence bundle. Field order is fixed.
func (e *AuditEvent) Leaf() []byte {
	q := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	details := string(e.Details)
	if details == "" {
		details = "{}"
	}
	return []byte(`{"seq":` + strconv.FormatInt(e.Seq, 10) +
		`,"id":` + q(e.ID) +
		`,"time_us":` + strconv.FormatInt(e.Time.UnixMicro(), 10) +
		`,"type":` + q(e.Type) +
		`,"actor_id":` + q(e.ActorID) +
		`,"actor_name":` + q(e.ActorName) +
		`,"subject":` + q(e.Subject) +
		`,"outcome":` + q(e.Outcome) +
		`,"request_id":` + q(e.RequestID) +
		`,"source_addr":` + q(e.SourceAddr) +
		`,"details":` + q(details) + "}\n")
}
