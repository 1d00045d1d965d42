package testenv_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/testenv"
)

// dial connects to a node as the fleet's user, pinning its host key.
func dial(t *testing.T, f *demo.Fleet, n *demo.SSHD) *ssh.Client {
	t.Helper()
	signer, err := ssh.ParsePrivateKey(f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(n.HostKey))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", "127.0.0.1:"+strconv.Itoa(n.Port), &ssh.ClientConfig{User: f.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(pub), HostKeyAlgorithms: []string{pub.Type()}, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("node on port %d: %v", n.Port, err)
	}
	return c
}

// TestSSHDNodes: each node answers with its own pinned host key, its
// sshd is handed the TCP socket itself (it sees the peer's address), and
// its sessions have a HOME of their own, so no startup file of whoever
// runs the tests is read.
func TestSSHDNodes(t *testing.T) {
	f := testenv.StartSSHD(t, 2)
	if f.Nodes[0].HostKey == f.Nodes[1].HostKey || f.Nodes[0].Port == f.Nodes[1].Port {
		t.Fatalf("nodes share a host key or a port: %+v %+v", f.Nodes[0], f.Nodes[1])
	}
	for _, n := range f.Nodes {
		c := dial(t, f, n)
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.CombinedOutput(`printf '%s|%s' "$HOME" "$SSH_CLIENT"`)
		c.Close()
		if err != nil {
			t.Fatalf("node on port %d: %v: %s", n.Port, err, out)
		}
		home, client, _ := strings.Cut(string(out), "|")
		if home != filepath.Join(n.Dir, "home") {
			t.Errorf("node on port %d: HOME is %q, want the node's own %q", n.Port, home, filepath.Join(n.Dir, "home"))
		}
		if !strings.HasPrefix(client, "127.0.0.1 ") || !strings.HasSuffix(client, " "+strconv.Itoa(n.Port)) {
			t.Errorf("node on port %d: SSH_CLIENT is %q, want the loopback peer and the node's port", n.Port, client)
		}
	}
}

// TestSSHDStopEndsSessions: Stop ends the sshd serving an open session,
// so the client sees the connection end, and Stop may be called again.
func TestSSHDStopEndsSessions(t *testing.T) {
	f := testenv.StartSSHD(t, 1)
	c := dial(t, f, f.Nodes[0])
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := s.StdinPipe() // held open: cat runs until sshd goes
	defer stdin.Close()
	stdout, _ := s.StdoutPipe()
	if err := s.Start("echo ready $PPID; exec cat"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	var sshdPID int
	if _, serr := fmt.Sscanf(line, "ready %d\n", &sshdPID); err != nil || serr != nil {
		t.Fatalf("session did not start: %q %v", line, err)
	}
	stopped := make(chan struct{})
	go func() { defer close(stopped); f.Stop() }()
	ended := make(chan error, 1)
	go func() { ended <- s.Wait() }()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("session ended cleanly; want it cut off by Stop")
		}
	case <-time.After(time.Minute):
		t.Fatal("session still open a minute after Stop began")
	}
	select {
	case <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("Stop did not return within a minute")
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(sshdPID, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("sshd %d, which served the session, still runs 10 s after Stop", sshdPID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.Stop()
}

// TestHelperSSHDFleet is run as a child process by
// TestSSHDOutlivesNoKilledProcess: it starts a fleet, says so, and waits
// to be killed.
func TestHelperSSHDFleet(t *testing.T) {
	dir := os.Getenv("TESTENV_SSHD_DIR")
	if dir == "" {
		t.Skip("run by TestSSHDOutlivesNoKilledProcess as a child process")
	}
	f, err := demo.StartSSHD(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("fleet ready on ports %d %d\n", f.Nodes[0].Port, f.Nodes[1].Port)
	time.Sleep(time.Hour)
}

// TestSSHDOutlivesNoKilledProcess kills (SIGKILL) a process that started
// a fleet and expects no sshd of that fleet left running: the process
// held the listening sockets, so nothing listens on its behalf.
func TestSSHDOutlivesNoKilledProcess(t *testing.T) {
	if _, err := os.Stat(demo.SSHDPath); err != nil {
		testenv.Missing(t, "sshd is not installed; skipping SSH tests")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSSHDFleet$")
	cmd.Env = append(os.Environ(), "TESTENV_SSHD_DIR="+dir)
	out := &lineWatch{line: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	reap := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	defer reap()
	select {
	case <-out.line:
	case <-time.After(2 * time.Minute):
		reap()
		t.Fatalf("the child did not start its fleet within 2 minutes:\n%s", out)
	}
	if !strings.HasPrefix(out.String(), "fleet ready") {
		reap()
		t.Fatalf("the child did not start its fleet:\n%s", out)
	}
	reap()
	// The sshd of a connection made before the kill ends once it sees
	// the connection closed; a listening sshd would never end.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := processesMentioning(t, dir)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after its parent was killed, processes of a fleet still run: %v", pids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lineWatch is a child's output; line is closed once a line is complete.
type lineWatch struct {
	mu   sync.Mutex
	b    strings.Builder
	line chan struct{}
	once sync.Once
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), "\n") {
		w.once.Do(func() { close(w.line) })
	}
	return len(p), nil
}

func (w *lineWatch) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

// processesMentioning lists the processes whose command line contains s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, filepath.Base(filepath.Dir(p))+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return pids
}
