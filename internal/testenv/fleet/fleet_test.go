package fleet

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock/internal/testenv"
)

func TestShell(t *testing.T) {
	for _, c := range []struct {
		script, stdout, stderr string
		status                 int
	}{
		{"echo ok", "ok\n", "", 0},
		{"echo -n a  'b c' \"d\\\"e\" f\\ g", "a b c d\"e f g", "", 0},
		{"echo one; echo two\necho three", "one\ntwo\nthree\n", "", 0},
		{"echo to-stderr >&2", "", "to-stderr\n", 0},
		{"exit 3; echo not-reached", "", "", 3},
		{"exit 300", "", "", 300 & 0xff},
		{"false", "", "", 1},
		{"false && echo no; echo yes", "yes\n", "", 0},
		{"false || echo rescued", "rescued\n", "", 0},
		{"true || echo no", "", "", 0},
		{"# a comment\necho after # trailing", "after\n", "", 0},
		{"yes-bytes 5", "y\ny\ny", "", 0},
		{"yes-bytes 0", "", "", 0},
		{"sleep 0.01; echo slept", "slept\n", "", 0},
		{"frobnicate --now; echo not-reached", "", "fleet: frobnicate: command not found\n", 127},
		{"echo $HOME", "", "fleet: unsupported $ expansion at offset 5\n", 2},
		{"echo a | cat", "", "fleet: unsupported syntax in \"|\" (the simulator has no pipes or redirections but >&2)\n", 2},
		{"echo 'open", "", "fleet: unterminated single quote at offset 5\n", 2},
		{"kill -KILL -- -4242", "", "fleet: kill: (4242) - No such process\n", 1},
	} {
		var out, errb bytes.Buffer
		sh := &Shell{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Group: 7, Kill: func(int) bool { return false }}
		status := sh.Run(context.Background(), c.script)
		if status != c.status || out.String() != c.stdout || errb.String() != c.stderr {
			t.Errorf("%q: status %d, stdout %q, stderr %q; want %d, %q, %q", c.script, status, out.String(), errb.String(), c.status, c.stdout, c.stderr)
		}
	}
}

func TestShellYesBytesLarge(t *testing.T) {
	var out bytes.Buffer
	sh := &Shell{Stdout: &out, Stderr: &out}
	if st := sh.Run(context.Background(), "yes-bytes 1000001"); st != 0 || out.Len() != 1000001 || !bytes.HasPrefix(out.Bytes(), []byte("y\ny\n")) {
		t.Fatalf("status %d, %d bytes", st, out.Len())
	}
}

// TestShellStepCommand: the command line sshexec builds for a step (a
// copy of its shape; the SSH executor's own tests run it end to end on
// the fleet): the group on stderr, the environment taken off stdin, then
// argv, or the script that follows on stdin.
func TestShellStepCommand(t *testing.T) {
	prefix := `echo "AIRLOCK_PGID=$$" >&2; umask 077; f=$(mktemp) || exit 125; dd bs=1 count=12 of="$f" 2>/dev/null || exit 125; ` +
		`exec env -i /bin/sh -c '. "$1"; rm -f "$1"; shift; exec "$@"' airlock-step "$f"`
	for _, c := range []struct{ tail, stdin, stdout string }{
		{` 'echo' 'it'\''s'`, "export A='1'", "it's\n"},
		{` '/bin/sh' -s`, "export A='1'echo from-script; exit 4", "from-script\n"},
	} {
		var out, errb bytes.Buffer
		sh := &Shell{Stdin: strings.NewReader(c.stdin), Stdout: &out, Stderr: &errb, Group: 1234}
		status := sh.Exec(context.Background(), prefix+c.tail)
		want := 0
		if strings.Contains(c.stdin, "exit 4") {
			want = 4
		}
		if status != want || out.String() != c.stdout || errb.String() != "AIRLOCK_PGID=1234\n" {
			t.Errorf("%s: status %d, stdout %q, stderr %q", c.tail, status, out.String(), errb.String())
		}
	}
}

func TestShellKilled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- (&Shell{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}).Run(ctx, "sleep 600; echo no")
	}()
	cancel()
	select {
	case st := <-done:
		if st != killed {
			t.Fatalf("status %d, want killed", st)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a killed sleep went on")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"echo ok", "a 'b' \"c\\\"\" d\\ e; f && g || h # i\n>&2", "'", "\"", "\\", "&&&", "||"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cmds, err := parse(s)
		if err == nil {
			for _, c := range cmds {
				if len(c.words) == 0 {
					t.Fatalf("%q: an empty command", s)
				}
			}
		}
	})
}

func dial(t *testing.T, f *Fleet, n *Node, hostKey string) (*ssh.Client, error) {
	t.Helper()
	signer, err := ssh.ParsePrivateKey(f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey))
	if err != nil {
		t.Fatal(err)
	}
	return ssh.Dial("tcp", n.Addr(), &ssh.ClientConfig{User: f.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(pinned), HostKeyAlgorithms: []string{pinned.Type()}, Timeout: 10 * time.Second})
}

func start(t *testing.T, n int) *Fleet {
	t.Helper()
	f, err := Start(n, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

func TestNodesHaveTheirOwnPortAndHostKey(t *testing.T) {
	f := start(t, 20)
	ports, keys := map[int]bool{}, map[string]bool{}
	for _, n := range f.Nodes {
		if ports[n.Port] || keys[n.HostKey] {
			t.Fatalf("%s shares a port or host key", n)
		}
		ports[n.Port], keys[n.HostKey] = true, true
	}
	// A node presents its own key: pinned to another node's, the
	// handshake fails.
	if _, err := dial(t, f, f.Nodes[0], f.Nodes[1].HostKey); err == nil || !strings.Contains(err.Error(), "host key mismatch") {
		t.Fatalf("node 0 accepted with node 1's pin: %v", err)
	}
	c, err := dial(t, f, f.Nodes[0], f.Nodes[0].HostKey)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestOnlyTheClientKeyAndUser(t *testing.T) {
	f := start(t, 1)
	other, err := Start(0, Options{}) // another client key
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range map[string]*Fleet{
		"another key":  {User: f.User, ClientKey: other.ClientKey},
		"another user": {User: "root", ClientKey: f.ClientKey},
	} {
		if _, err := dial(t, g, f.Nodes[0], f.Nodes[0].HostKey); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCommandsOverSSH(t *testing.T) {
	f := start(t, 1)
	n := f.Nodes[0]
	c, err := dial(t, f, n, n.HostKey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := func(cmd string) (string, string, error) {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var out, errb bytes.Buffer
		s.Stdout, s.Stderr = &out, &errb
		err = s.Run(cmd)
		return out.String(), errb.String(), err
	}
	if out, _, err := run("echo ok"); err != nil || out != "ok\n" {
		t.Fatalf("echo: %q %v", out, err)
	}
	var exit *ssh.ExitError
	if _, _, err := run("exit 7"); !errors.As(err, &exit) || exit.ExitStatus() != 7 {
		t.Fatalf("exit 7: %v", err)
	}
	if _, stderr, err := run("nope"); !errors.As(err, &exit) || exit.ExitStatus() != 127 || stderr != "fleet: nope: command not found\n" {
		t.Fatalf("unknown command: %v %q", err, stderr)
	}
	if out, _, err := run("yes-bytes 100000"); err != nil || len(out) != 100000 {
		t.Fatalf("yes-bytes: %d bytes, %v", len(out), err)
	}
	// Sessions on one connection run at once.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if out, _, err := run("sleep 0.2; echo slept"); err != nil || out != "slept\n" {
				t.Errorf("sleep: %q %v", out, err)
			}
		})
	}
	wg.Wait()
	if n.Conns() != 1 || n.Sessions() != 14 {
		t.Fatalf("%d connections, %d sessions; want 1 and 14", n.Conns(), n.Sessions())
	}
}

// TestSignalAndKill: a KILL signal, a kill of its group from another
// session, or closing its session ends a running command.
func TestSignalAndKill(t *testing.T) {
	f := start(t, 1)
	n := f.Nodes[0]
	c, err := dial(t, f, n, n.HostKey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, how := range []string{"signal", "kill", "close"} {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		s.Stdout = &out
		if err := s.Start("sleep 600"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, how+": the command to run", func() bool { return n.Running() == 1 })
		switch how {
		case "signal":
			_ = s.Signal(ssh.SIGKILL)
		case "kill":
			n.mu.Lock()
			var group int
			for g := range n.groups {
				group = g
			}
			n.mu.Unlock()
			k, _ := c.NewSession()
			if err := k.Run("kill -KILL -- -" + strconv.Itoa(group)); err != nil {
				t.Fatalf("kill: %v", err)
			}
			k.Close()
		case "close":
			s.Close()
		}
		testenv.Eventually(t, how+": the command to end", func() bool { return n.Running() == 0 })
		if how != "close" {
			var exit *ssh.ExitError
			if err := s.Wait(); !errors.As(err, &exit) || exit.Signal() != "KILL" {
				t.Fatalf("%s: %v, want a KILL signal", how, err)
			}
		}
		s.Close()
	}
}

func TestStopEndsEverything(t *testing.T) {
	f, err := Start(3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := f.Nodes[0]
	c, err := dial(t, f, n, n.HostKey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := c.NewSession()
	if err := s.Start("sleep 600"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the command to run", func() bool { return n.Running() == 1 })
	stopped := make(chan struct{})
	go func() { f.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not return with a command running")
	}
	f.Stop() // again: a no-op
	if _, err := dial(t, f, n, n.HostKey); err == nil {
		t.Fatal("a stopped node accepted a connection")
	}
}
