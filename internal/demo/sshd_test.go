package demo_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/testenv"
)

// fleetInfo is what TestHelperFleetOwner tells the test of its node.
type fleetInfo struct {
	User      string
	Port      int
	HostKey   string
	ClientKey []byte
}

// TestHelperFleetOwner is run as a child process by
// TestSSHDDiesWithTheDemo: it starts one SSH node, writes how to reach
// it, and waits until its stdin closes or it is killed.
func TestHelperFleetOwner(t *testing.T) {
	dir := os.Getenv("DEMO_FLEET_DIR")
	if dir == "" {
		t.Skip("run by TestSSHDDiesWithTheDemo as a child process")
	}
	f, err := demo.StartSSHD(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	b, _ := json.Marshal(fleetInfo{User: f.User, Port: f.Nodes[0].Port, HostKey: f.Nodes[0].HostKey, ClientKey: f.ClientKey})
	if err := os.WriteFile(filepath.Join(dir, "info.tmp"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "info.tmp"), filepath.Join(dir, "info.json")); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// TestSSHDDiesWithTheDemo: when the demo is killed with SIGKILL, the
// sshd serving a connection from another client dies with it (was: it
// served on, for as long as that client stayed connected).
func TestSSHDDiesWithTheDemo(t *testing.T) {
	if _, err := os.Stat(demo.SSHDPath); err != nil {
		testenv.Missing(t, "sshd is not installed; skipping SSH tests")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFleetOwner$", "-test.v")
	cmd.Env = append(os.Environ(), "DEMO_FLEET_DIR="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("the demo's output:\n%s", out.String())
		}
	})
	var info fleetInfo
	testenv.Eventually(t, "the child to start its SSH node", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "info.json"))
		return err == nil && json.Unmarshal(b, &info) == nil
	})
	signer, err := ssh.ParsePrivateKey(info.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(info.HostKey))
	if err != nil {
		t.Fatal(err)
	}
	// A client of the test's own keeps a connection open.
	c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(info.Port)), &ssh.ClientConfig{User: info.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sshds := children(cmd.Process.Pid)
	if len(sshds) == 0 {
		t.Fatal("no sshd serves the test's connection")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	for _, pid := range sshds {
		testenv.Eventually(t, fmt.Sprintf("sshd %d, serving an open connection, to die with the demo", pid), func() bool {
			return !running(pid)
		})
	}
}

// children lists the live child processes of pid.
func children(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[0] != "Z" && f[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, child)
		}
	}
	return out
}

// running reports whether pid is a live process, not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}
