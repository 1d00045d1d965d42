package sshexec_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/executor"
	"github.com/airlockhq/airlock/internal/executor/sshexec"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

type buf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buf) Write(p []byte) (int, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.b.Write(p) }
func (b *buf) String() string              { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func jobFor(f *demo.Fleet, d *demo.SSHD, steps ...executor.Step) (*executor.Job, *buf, *buf) {
	var out, errb buf
	for i := range steps {
		steps[i].Index = i
		if steps[i].Name == "" {
			steps[i].Name = fmt.Sprintf("s%d", i)
		}
	}
	n := &store.Node{Name: fmt.Sprintf("node-%d", d.Port), Address: "127.0.0.1", Port: d.Port, User: f.User, HostKey: d.HostKey, Transport: store.TransportSSH}
	return &executor.Job{RunID: "run_x", Node: n, Steps: steps, Env: map[string]string{"PATH": executor.SafePath, "AIRLOCK_PARAM_X": "it's $(id) `id`; rm -rf / \n done"},
		Credential: f.ClientKey, Stdout: &out, Stderr: &errb}, &out, &errb
}

func TestRunExactArgvAndEnv(t *testing.T) {
	f := testenv.StartSSHD(t, 1)
	value := "it's $(id) `id`; rm -rf / && echo pwned | cat \n\"quoted\" *.go ~"
	j, out, errb := jobFor(f, f.Nodes[0],
		executor.Step{Argv: []string{"printf", "%s|", value}},
		executor.Step{Shell: "/bin/sh", Script: "printf '%s|' \"$AIRLOCK_PARAM_X\"; env | sort | tr '\\n' ' '"},
	)
	res := sshexec.Executor{}.Run(context.Background(), j)
	if res.Status != executor.Succeeded {
		t.Fatalf("%+v\nstderr: %s", res, errb.String())
	}
	got := out.String()
	if !strings.HasPrefix(got, value+"|"+j.Env["AIRLOCK_PARAM_X"]+"|") {
		t.Fatalf("values did not arrive byte-exact:\n%q", got)
	}
	env := got[len(value+"|"+j.Env["AIRLOCK_PARAM_X"]+"|"):]
	for _, kv := range strings.Fields(env) {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "AIRLOCK_PARAM_X", "PWD", "SHLVL", "_", "it's", "$(id)", "`id`;", "rm", "-rf", "/", "done":
		default:
			t.Errorf("unexpected remote environment variable %q in %q", k, env)
		}
	}
	if strings.Contains(errb.String(), "AIRLOCK_PGID") {
		t.Fatalf("pgid marker leaked into stderr: %q", errb.String())
	}
}

func TestChangedOrUnknownHostKeyFails(t *testing.T) {
	f := testenv.StartSSHD(t, 2)
	j, _, errb := jobFor(f, f.Nodes[0], executor.Step{Argv: []string{"true"}})
	j.Node.HostKey = f.Nodes[1].HostKey // the pin of another host
	res := sshexec.Executor{}.Run(context.Background(), j)
	if res.Status != executor.Failed || !strings.Contains(res.Error, "host key of node "+j.Node.Name+" changed") || !strings.Contains(errb.String(), "refusing to connect") {
		t.Fatalf("changed key: %+v", res)
	}
	j.Node.HostKey = ""
	res = sshexec.Executor{}.Run(context.Background(), j)
	if res.Status != executor.Failed || !strings.Contains(res.Error, "no pinned host key") {
		t.Fatalf("unknown key: %+v", res)
	}
}

// remoteAlive checks on the node whether a process with marker in its
// command line still runs.
func remoteAlive(t *testing.T, f *demo.Fleet, d *demo.SSHD, marker string) bool {
	j, _, _ := jobFor(f, d)
	c, err := sshexec.Executor{}.Dial(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := c.NewSession()
	defer s.Close()
	// "[a]irlock…" matches the marker but not this command line itself.
	out, _ := s.CombinedOutput("pgrep -f " + sshexec.Quote("["+marker[:1]+"]"+marker[1:]) + " || true")
	return strings.TrimSpace(string(out)) != ""
}

func TestCancelAndTimeoutKillTheRemoteCommand(t *testing.T) {
	f := testenv.StartSSHD(t, 1)
	d := f.Nodes[0]
	for _, mode := range []string{"cancel", "timeout"} {
		marker := fmt.Sprintf("airlock-test-%s-%d", mode, time.Now().UnixNano())
		// A child in the background and one in the foreground: both must go.
		script := fmt.Sprintf("sh -c 'sleep 300; echo %s' & sh -c 'sleep 301; echo %s'\n", marker, marker)
		st := executor.Step{Shell: "/bin/sh", Script: script}
		if mode == "timeout" {
			st.Timeout = 700 * time.Millisecond
		}
		j, _, _ := jobFor(f, d, st)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan executor.Result, 1)
		go func() { done <- sshexec.Executor{}.Run(ctx, j) }()
		deadline := time.Now().Add(10 * time.Second)
		for !remoteAlive(t, f, d, marker) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: remote command never started", mode)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if mode == "cancel" {
			cancel()
		}
		res := <-done
		cancel()
		want := executor.Canceled
		if mode == "timeout" {
			want = executor.Failed
		}
		if res.Status != want {
			t.Fatalf("%s: %+v", mode, res)
		}
		gone := false
		for range 50 {
			if !remoteAlive(t, f, d, marker) {
				gone = true
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !gone {
			t.Fatalf("%s: the remote command survived", mode)
		}
	}
}

func TestKeyParsing(t *testing.T) {
	f := testenv.StartSSHD(t, 1)
	if _, err := ssh.ParsePrivateKey(f.ClientKey); err != nil {
		t.Fatal(err)
	}
}

// TestSecretsStayOffTheRemoteCommandLine: a step's secrets and
// parameters reach it as environment variables, never in a command line
// (which every user of the node reads with ps). While the step runs,
// every process's command line on the node (this machine: the sshd is on
// loopback) is scanned for them.
func TestSecretsStayOffTheRemoteCommandLine(t *testing.T) {
	f := testenv.StartSSHD(t, 1)
	secret, param := "s3cret-"+fmt.Sprint(time.Now().UnixNano()), "param-"+fmt.Sprint(time.Now().UnixNano())
	dir := t.TempDir()
	j, _, errb := jobFor(f, f.Nodes[0],
		executor.Step{Shell: "/bin/sh", Script: "[ \"$DB_PW\" = " + sshexec.Quote(secret) + " ] && [ \"$AIRLOCK_PARAM_P\" = " + sshexec.Quote(param) +
			" ] && touch " + sshexec.Quote(dir+"/running") + " && while [ ! -e " + sshexec.Quote(dir+"/stop") + " ]; do sleep 0.05; done",
			Env: map[string]string{"DB_PW": secret}})
	j.Env["AIRLOCK_PARAM_P"] = param
	// The command line the node's shell runs (and ps shows until it
	// replaces itself) names no value: they come on stdin.
	for _, st := range append(j.Steps, executor.Step{Argv: []string{"printenv", "DB_PW"}, Env: map[string]string{"DB_PW": secret}}) {
		if cmd := sshexec.Command(st, len(sshexec.EnvScript(j.Env, st.Env))); strings.Contains(cmd, secret) || strings.Contains(cmd, param) {
			t.Fatalf("the remote command line carries a value: %s", cmd)
		}
	}
	done := make(chan executor.Result, 1)
	go func() { done <- sshexec.Executor{}.Run(context.Background(), j) }()
	testenv.Eventually(t, "the step to start with its secret in its environment", func() bool {
		_, err := os.Stat(dir + "/running")
		return err == nil
	})
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte(param)) {
			t.Errorf("%s holds a secret or parameter value: %q", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	if err := os.WriteFile(dir+"/stop", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.Status != executor.Succeeded {
			t.Fatalf("%+v\nstderr: %s", res, errb.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("waited a minute for the step to end")
	}
}
