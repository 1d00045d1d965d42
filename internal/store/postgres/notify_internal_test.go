package postgres

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestPendingNoticesAreBounded: keys of a topic past maxPendingKeys, a
// key with a space, or the key "" collapse the topic to "" (any key);
// other topics keep theirs.
func TestPendingNoticesAreBounded(t *testing.T) {
	n := &notifier{pending: map[string]map[string]struct{}{}, kick: make(chan struct{}, 1)}
	for i := range maxPendingKeys + 10 {
		n.publish("run", fmt.Sprintf("run_%d", i))
	}
	n.publish("tokens", "a", "b")
	if got := n.pending["run"]; len(got) != 1 || !has(got, "") {
		t.Errorf("run: %d keys pending past the bound, want only \"\"", len(got))
	}
	if got := n.pending["tokens"]; len(got) != 2 || !has(got, "a") || !has(got, "b") {
		t.Errorf("tokens: pending %v, want a and b", got)
	}
	n.publish("tokens", "c d")
	if got := n.pending["tokens"]; len(got) != 1 || !has(got, "") {
		t.Errorf("a key with a space: pending %v, want only \"\"", got)
	}
}

// TestPayloadsSplitAndKeepEveryKey: a batch larger than one payload is
// split; every payload starts with the sender and fits; together they
// hold every key once.
func TestPayloadsSplitAndKeepEveryKey(t *testing.T) {
	n := &notifier{sender: "0123456789abcdef"}
	pending := map[string]map[string]struct{}{"run": {}, "queued": {"": {}}}
	for i := range maxPendingKeys {
		pending["run"][fmt.Sprintf("run_%026d", i)] = struct{}{}
	}
	ps := n.payloads(pending)
	if len(ps) < 2 {
		t.Fatalf("%d payloads for %d keys, want a split", len(ps), maxPendingKeys)
	}
	var items []string
	for _, p := range ps {
		if len(p) > maxPayload {
			t.Errorf("a payload of %d bytes, over %d", len(p), maxPayload)
		}
		sender, rest, _ := strings.Cut(p, " ")
		if sender != n.sender {
			t.Errorf("a payload starts with %q, not the sender", sender)
		}
		items = append(items, strings.Fields(rest)...)
	}
	if len(items) != maxPendingKeys+1 || !slices.Contains(items, "queued:") {
		t.Errorf("%d items (queued: included: %v), want %d", len(items), slices.Contains(items, "queued:"), maxPendingKeys+1)
	}
	for k := range pending["run"] {
		if !slices.Contains(items, "run:"+k) {
			t.Fatalf("run:%s is in no payload", k)
		}
	}
}

func has(set map[string]struct{}, k string) bool { _, ok := set[k]; return ok }
