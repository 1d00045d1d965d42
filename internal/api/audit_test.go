package api_test

import (
	"encoding/base64"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
)

func h64(t *testing.T, s any) tlog.Hash {
	b, err := base64.StdEncoding.DecodeString(s.(string))
	if err != nil || len(b) != tlog.HashSize {
		t.Fatalf("hash %v: %v", s, err)
	}
	var h tlog.Hash
	copy(h[:], b)
	return h
}

// TestCheckpointsAndProofs: a checkpoint from earlier plus today's log
// proves consistency; inclusion proofs check against the signed root.
func TestCheckpointsAndProofs(t *testing.T) {
	d := newDemoEnv(t, nil)
	code, c1, _ := d.call("POST", "/api/v1/audit/checkpoint", d.tok["dana"], nil)
	if code != 200 {
		t.Fatalf("checkpoint: %d %v", code, c1)
	}
	v, err := note.NewVerifier(c1["key"].(string))
	if err != nil {
		t.Fatal(err)
	}
	_, size1, root1, err := audit.OpenCheckpoint(c1["note"].(string), v)
	if err != nil || size1 < 10 {
		t.Fatalf("open checkpoint: %d %v", size1, err)
	}
	// More activity, then a newer checkpoint.
	d.request(t, "alice", map2req("flush-cache", "staging"))
	_, c2, _ := d.call("POST", "/api/v1/audit/checkpoint", d.tok["dana"], nil)
	_, size2, root2, err := audit.OpenCheckpoint(c2["note"].(string), v)
	if err != nil || size2 <= size1 {
		t.Fatalf("second checkpoint %d after %d: %v", size2, size1, err)
	}
	code, cp, _ := d.call("GET", fmt.Sprintf("/api/v1/audit/proof/consistency?old=%d&new=%d", size1, size2), d.tok["dana"], nil)
	if code != 200 {
		t.Fatalf("consistency: %d %v", code, cp)
	}
	var tp tlog.TreeProof
	for _, p := range cp["proof"].([]any) {
		tp = append(tp, h64(t, p))
	}
	if err := tlog.CheckTree(tp, size2, root2, size1, root1); err != nil {
		t.Fatalf("consistency proof does not check: %v", err)
	}
	// A wrong old root fails.
	bad := root1
	bad[0] ^= 1
	if tlog.CheckTree(tp, size2, root2, size1, bad) == nil {
		t.Fatal("consistency proof checked against a rewritten history")
	}
	code, ip, _ := d.call("GET", fmt.Sprintf("/api/v1/audit/proof/inclusion?index=3&size=%d", size2), d.tok["dana"], nil)
	if code != 200 {
		t.Fatalf("inclusion: %d %v", code, ip)
	}
	var rp tlog.RecordProof
	for _, p := range ip["proof"].([]any) {
		rp = append(rp, h64(t, p))
	}
	if err := tlog.CheckRecord(rp, size2, root2, 3, h64(t, ip["leaf_hash"])); err != nil {
		t.Fatalf("inclusion proof does not check: %v", err)
	}
	// The event at 3 hashes to the proven leaf.
	_, evs, _ := d.call("GET", "/api/v1/audit/events?after=2&limit=1", d.tok["dana"], nil)
	if len(evs["items"].([]any)) != 1 {
		t.Fatal("events page")
	}
	// Not for everyone.
	if code, _, _ := d.call("GET", "/api/v1/audit/checkpoint", d.tok["alice"], nil); code != 403 {
		t.Fatalf("alice reads the audit log: %d", code)
	}
}

func map2req(proc, env string) api.RunRequest {
	return api.RunRequest{Procedure: proc, Environment: env, Params: map[string]any{"cache": "sessions"}}
}
