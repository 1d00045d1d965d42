package main

import (
	"os"
	"testing"

	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/testenv/fleet"
)

// TestInventoryLoads: the inventory written for the fleet is one the
// server accepts (inventory.LoadFile validates every node, host key
// pins included), and names every node with its own port and key.
func TestInventoryLoads(t *testing.T) {
	f, err := fleet.Start(3, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	invPath, keyPath, err := write(f, t.TempDir(), "staging", "fleet", "bench/fleet-key", "fleet-")
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := inventory.LoadFile(invPath, []string{"staging", "production"})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 {
		t.Fatalf("%d nodes", len(nodes))
	}
	for i, n := range nodes {
		if n.Port != f.Nodes[i].Port || n.HostKey != f.Nodes[i].HostKey || n.Credential != "bench/fleet-key" || n.User != f.User {
			t.Errorf("node %d: %+v", i, n)
		}
	}
	if b, err := os.ReadFile(keyPath); err != nil || string(b) != string(f.ClientKey) {
		t.Fatalf("client key: %v", err)
	}
}
