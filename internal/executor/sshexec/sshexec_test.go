package sshexec_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	"github.com/airlockhq/airlock/internal/testenv/fleet"
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
			// Long enough for the connection and session to open on a
			// loaded machine: the timeout counts from the step's start.
			st.Timeout = 5 * time.Second
		}
		j, _, _ := jobFor(f, d, st)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan executor.Result, 1)
		go func() { done <- sshexec.Executor{}.Run(ctx, j) }()
		deadline := time.Now().Add(30 * time.Second)
		for !remoteAlive(t, f, d, marker) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: waited 30s for the remote command to start; it never did", mode)
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

// TestStepsOfAJobShareOneConnection: the steps of one job run in
// sessions of one SSH connection. Each step prints its parent, the sshd
// process that serves the connection (every exec on the way to the step
// replaces the login shell, so $PPID is that sshd's PID): one connection,
// one PID. A second job, like a second run, gets a connection of its own.
func TestStepsOfAJobShareOneConnection(t *testing.T) {
	f := testenv.StartSSHD(t, 1)
	var steps []executor.Step
	for range 5 {
		steps = append(steps, executor.Step{Shell: "/bin/sh", Script: "echo $PPID"})
	}
	run := func() []string {
		j, out, errb := jobFor(f, f.Nodes[0], slices.Clone(steps)...)
		if res := (sshexec.Executor{}).Run(context.Background(), j); res.Status != executor.Succeeded {
			t.Fatalf("%+v\nstderr: %s", res, errb.String())
		}
		return strings.Fields(out.String())
	}
	first := run()
	if len(first) != 5 || len(slices.Compact(slices.Clone(first))) != 1 {
		t.Fatalf("the steps ran on more than one connection (sshd PIDs %v)", first)
	}
	if second := run(); second[0] == first[0] {
		t.Fatalf("a second job reused the first one's connection (sshd PID %s)", first[0])
	}
}

// TestConnectionLostMidJob against real sshd: the first step arranges
// for the connection's sshd to be killed while the second step runs.
// The second step fails at once and cleanly (it may have done part of
// its work, so it is not run again); the third, reached because the
// second continues on error, runs on a new connection.
func TestConnectionLostMidJob(t *testing.T) {
	f := testenv.StartSSHD(t, 1)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	j, out, errb := jobFor(f, f.Nodes[0],
		executor.Step{Shell: "/bin/sh", Script: "echo $PPID; (while [ ! -e " + sshexec.Quote(started) + " ]; do sleep 0.05; done; kill -KILL $PPID) </dev/null >/dev/null 2>&1 &"},
		executor.Step{Shell: "/bin/sh", Script: "touch " + sshexec.Quote(started) + "; sleep 30; echo not-reached", ContinueOnError: true},
		executor.Step{Shell: "/bin/sh", Script: "echo $PPID"},
	)
	t0 := time.Now()
	res := sshexec.Executor{}.Run(context.Background(), j)
	if time.Since(t0) > 20*time.Second {
		t.Fatalf("the step on the lost connection was waited out (%s)", time.Since(t0))
	}
	if len(res.Steps) != 3 || res.Steps[0].Status != executor.Succeeded || res.Steps[1].Status != executor.Failed || res.Steps[2].Status != executor.Succeeded {
		t.Fatalf("%+v\nstderr: %s", res, errb.String())
	}
	pids := strings.Fields(out.String())
	if len(pids) != 2 || pids[0] == pids[1] || strings.Contains(out.String(), "not-reached") {
		t.Fatalf("want two different sshd PIDs, got %q", out.String())
	}
	if !strings.Contains(errb.String(), "is not run again") {
		t.Fatalf("the failed step does not say why: %q", errb.String())
	}
}

// startFleet starts n simulated nodes (internal/testenv/fleet).
func startFleet(t *testing.T, n int) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Start(n, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

func fleetJob(f *fleet.Fleet, n *fleet.Node, steps ...executor.Step) (*executor.Job, *buf, *buf) {
	var out, errb buf
	for i := range steps {
		steps[i].Index = i
		if steps[i].Name == "" {
			steps[i].Name = fmt.Sprintf("s%d", i)
		}
	}
	node := &store.Node{Name: fmt.Sprintf("sim-%d", n.Port), Address: "127.0.0.1", Port: n.Port, User: f.User, HostKey: n.HostKey, Transport: store.TransportSSH}
	return &executor.Job{RunID: "run_x", Node: node, Steps: steps, Env: map[string]string{"PATH": executor.SafePath},
		Credential: f.ClientKey, Stdout: &out, Stderr: &errb}, &out, &errb
}

// TestFleetOneConnectionPerJob: 300 simulated nodes, three steps each,
// 100 jobs at a time: every node accepted exactly one connection and
// opened one session per step.
func TestFleetOneConnectionPerJob(t *testing.T) {
	f := startFleet(t, 300)
	sem := make(chan struct{}, 100)
	var wg sync.WaitGroup
	for _, n := range f.Nodes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			j, out, errb := fleetJob(f, n, executor.Step{Argv: []string{"echo", "ok"}}, executor.Step{Shell: "/bin/sh", Script: "echo two; true"},
				executor.Step{Argv: []string{"yes-bytes", "10"}})
			res := sshexec.Executor{}.Run(context.Background(), j)
			if res.Status != executor.Succeeded || out.String() != "ok\ntwo\n"+strings.Repeat("y\n", 5) {
				t.Errorf("%s: %+v, stdout %q, stderr %q", n, res, out.String(), errb.String())
			}
		})
	}
	wg.Wait()
	for _, n := range f.Nodes {
		if n.Conns() != 1 || n.Sessions() != 3 {
			t.Fatalf("%s: %d connections and %d sessions, want 1 and 3", n, n.Conns(), n.Sessions())
		}
	}
}

// TestFleetConnectionLostBetweenSteps: the node drops the connection
// when the first step has ended; the second step, of which nothing ran,
// runs on a new connection.
func TestFleetConnectionLostBetweenSteps(t *testing.T) {
	f := startFleet(t, 1)
	n := f.Nodes[0]
	j, out, errb := fleetJob(f, n, executor.Step{Argv: []string{"echo", "one"}}, executor.Step{Argv: []string{"echo", "two"}})
	j.StepDone = func(sr executor.StepResult) {
		if sr.Index == 0 {
			n.Drop()
		}
	}
	res := sshexec.Executor{}.Run(context.Background(), j)
	if res.Status != executor.Succeeded || out.String() != "one\ntwo\n" {
		t.Fatalf("%+v, stdout %q, stderr %q", res, out.String(), errb.String())
	}
	if n.Conns() != 2 || !strings.Contains(errb.String(), "connecting again") {
		t.Fatalf("%d connections, stderr %q; want a second connection, and a note of it", n.Conns(), errb.String())
	}
}

// TestFleetConnectionLostDuringStep: the connection drops while a step
// runs: that step fails at once, is not run again, and the next step
// (the failed one continues on error) runs on a new connection.
func TestFleetConnectionLostDuringStep(t *testing.T) {
	f := startFleet(t, 1)
	n := f.Nodes[0]
	j, out, errb := fleetJob(f, n, executor.Step{Shell: "/bin/sh", Script: "echo started; sleep 60", ContinueOnError: true},
		executor.Step{Argv: []string{"echo", "after"}})
	done := make(chan executor.Result, 1)
	go func() { done <- sshexec.Executor{}.Run(context.Background(), j) }()
	// Running counts the command from its exec request; its script
	// arrives on stdin after that: wait until it has begun.
	testenv.Eventually(t, "the first step to print started", func() bool { return n.Running() == 1 && out.String() == "started\n" })
	n.Drop()
	var res executor.Result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the step on the lost connection was waited out")
	}
	if res.Status != executor.Succeeded || len(res.Steps) != 2 || res.Steps[0].Status != executor.Failed || res.Steps[1].Status != executor.Succeeded {
		t.Fatalf("%+v\nstderr: %s", res, errb.String())
	}
	if out.String() != "started\nafter\n" || n.Conns() != 2 || n.Sessions() != 2 {
		t.Fatalf("stdout %q, %d connections, %d sessions", out.String(), n.Conns(), n.Sessions())
	}
}

// TestFleetCancelAndTimeout: a cancel or a step timeout ends the
// command on the node (through the kill session or the session's
// close), and the job reports it.
func TestFleetCancelAndTimeout(t *testing.T) {
	f := startFleet(t, 1)
	n := f.Nodes[0]
	for _, mode := range []string{"cancel", "timeout"} {
		st := executor.Step{Shell: "/bin/sh", Script: "sleep 300"}
		if mode == "timeout" {
			st.Timeout = 300 * time.Millisecond
		}
		j, _, errb := fleetJob(f, n, st)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan executor.Result, 1)
		go func() { done <- sshexec.Executor{}.Run(ctx, j) }()
		testenv.Eventually(t, mode+": the step to run", func() bool { return n.Running() == 1 })
		if mode == "cancel" {
			cancel()
		}
		res := <-done
		cancel()
		want := map[string]string{"cancel": executor.Canceled, "timeout": executor.Failed}[mode]
		if res.Status != want {
			t.Fatalf("%s: %+v\nstderr: %s", mode, res, errb.String())
		}
		testenv.Eventually(t, mode+": the command on the node to end", func() bool { return n.Running() == 0 })
	}
}

// A script larger than the channel's window (OpenSSH's is 2 MiB) arrives
// whole: stdin is written as the node reads it, not all at once.
func TestScriptLargerThanTheWindowArrivesWhole(t *testing.T) {
	f := testenv.StartSSHD(t, 1)
	script := "# " + strings.Repeat("x", 3<<20) + "\necho \"tail reached with $AIRLOCK_PARAM_X\"\n"
	j, out, errb := jobFor(f, f.Nodes[0], executor.Step{Shell: "/bin/sh", Script: script})
	res := sshexec.Executor{}.Run(context.Background(), j)
	if res.Status != executor.Succeeded {
		t.Fatalf("%+v\nstderr: %s", res, errb.String())
	}
	if want := "tail reached with " + j.Env["AIRLOCK_PARAM_X"] + "\n"; out.String() != want {
		t.Fatalf("stdout %q, want %q", out.String(), want)
	}
}
