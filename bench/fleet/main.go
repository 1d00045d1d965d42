// Command fleet serves N simulated SSH nodes from this one process
// (internal/testenv/fleet: a loopback port and an Ed25519 host key per
// node, built-in commands, no fork) until interrupted, for trying a
// fan-out by hand. It writes an inventory file of the nodes (host keys
// pinned) and the client key they accept:
//
//	go run ./bench/fleet --nodes 1000 --dir /tmp/fleet
//	airlock secrets set bench/fleet-key --from-file /tmp/fleet/client_key
//	airlock nodes put /tmp/fleet/inventory.yaml
//
// The nodes run `echo`, `sleep`, `exit`, `true`, `false`, `yes-bytes N`
// and the command line Airlock's SSH executor builds for a step; see
// bench/fleet/README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/testenv/fleet"
)

func main() {
	n := flag.Int("nodes", 100, "simulated nodes")
	dir := flag.String("dir", "", "directory for inventory.yaml and client_key (required)")
	env := flag.String("environment", "staging", "the nodes' environment")
	tag := flag.String("tag", "fleet", "the nodes' tag")
	cred := flag.String("credential", "bench/fleet-key", "the secret naming the client key, as the inventory refers to it")
	prefix := flag.String("prefix", "fleet-", "node names: PREFIX0001, PREFIX0002, …")
	flag.Parse()
	if err := run(*n, *dir, *env, *tag, *cred, *prefix); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func run(n int, dir, env, tag, cred, prefix string) error {
	if dir == "" || n < 1 {
		return fmt.Errorf("--dir and --nodes of at least 1 are required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := fleet.Start(n, fleet.Options{})
	if err != nil {
		return err
	}
	defer f.Stop()
	invPath, keyPath, err := write(f, dir, env, tag, cred, prefix)
	if err != nil {
		return err
	}
	fmt.Printf("%d simulated SSH nodes on 127.0.0.1, user %s; the first on port %d.\n\n", n, f.User, f.Nodes[0].Port)
	fmt.Printf("  airlock secrets set %s --from-file %s\n  airlock nodes put %s\n\n", cred, keyPath, invPath)
	fmt.Printf("Then a procedure with targets: {tags: [%s]} runs on them in %s. Press Ctrl-C to stop.\n", tag, env)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	var conns, sessions int64
	for _, node := range f.Nodes {
		conns, sessions = conns+node.Conns(), sessions+node.Sessions()
	}
	fmt.Println(strings.TrimSpace(fmt.Sprintf("\nserved %d connections and %d sessions", conns, sessions)))
	return nil
}

// write writes the fleet's inventory file and client key into dir.
func write(f *fleet.Fleet, dir, env, tag, cred, prefix string) (invPath, keyPath string, err error) {
	inv := inventory.File{}
	for i, node := range f.Nodes {
		inv.Nodes = append(inv.Nodes, inventory.Node{Name: fmt.Sprintf("%s%04d", prefix, i+1), Address: "127.0.0.1", Port: node.Port,
			User: f.User, Environment: env, Tags: []string{tag}, HostKey: node.HostKey, Credential: cred})
	}
	b, err := yaml.Marshal(inv)
	if err != nil {
		return "", "", err
	}
	invPath, keyPath = filepath.Join(dir, "inventory.yaml"), filepath.Join(dir, "client_key")
	if err := os.WriteFile(invPath, b, 0o600); err != nil {
		return "", "", err
	}
	return invPath, keyPath, os.WriteFile(keyPath, f.ClientKey, 0o600)
}
