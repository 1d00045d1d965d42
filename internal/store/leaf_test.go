package store

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// reference is the definition the fast Leaf must match byte for byte.
func reference(e *AuditEvent) []byte {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	d := string(e.Details)
	if d == "" {
		d = "{}"
	}
	return []byte(`{"seq":` + strconv.FormatInt(e.Seq, 10) + `,"id":` + q(e.ID) + `,"time_us":` + strconv.FormatInt(e.Time.UnixMicro(), 10) +
		`,"type":` + q(e.Type) + `,"actor_id":` + q(e.ActorID) + `,"actor_name":` + q(e.ActorName) + `,"subject":` + q(e.Subject) +
		`,"outcome":` + q(e.Outcome) + `,"request_id":` + q(e.RequestID) + `,"source_addr":` + q(e.SourceAddr) + `,"details":` + q(d) + "}\n")
}

func FuzzLeaf(f *testing.F) {
	f.Add(int64(3), "evt_x", "run.finish", "bob", `{"a":"<b>&\"c\"\n\u2028"}`, "ünï")
	f.Add(int64(0), "", "", "", "", "\xff\xfe")
	f.Fuzz(func(t *testing.T, seq int64, id, typ, actor, details, subject string) {
		e := &AuditEvent{Seq: seq, ID: id, Time: time.UnixMicro(seq), Type: typ, ActorName: actor, Subject: subject, Details: []byte(details)}
		if got, want := e.Leaf(), reference(e); string(got) != string(want) {
			t.Fatalf("leaf %q, want %q", got, want)
		}
	})
}

func FuzzLeafRow(f *testing.F) {
	f.Add(int64(3), "evt_x", "run.finish", "bob", `{"a":"<b>&\"c\"\n\u2028\x01\x7f"}`, "ünï\xe2\x80")
	f.Add(int64(0), "", "", "", "", "\xff\xfe\u2029")
	f.Fuzz(func(t *testing.T, seq int64, id, typ, actor, details, subject string) {
		e := &AuditEvent{Seq: seq, ID: id, Time: time.UnixMicro(seq), Type: typ, ActorName: actor, Subject: subject, Details: []byte(details)}
		r := &LeafRow{Seq: seq, TimeUS: seq, ID: []byte(id), Type: []byte(typ), ActorName: []byte(actor), Subject: []byte(subject), Details: []byte(details)}
		if got, want := r.AppendLeaf([]byte("x")), append([]byte("x"), reference(e)...); string(got) != string(want) {
			t.Fatalf("leaf %q, want %q", got, want)
		}
	})
}
