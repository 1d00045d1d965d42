package local_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/executor"
	"github.com/airlockhq/airlock/internal/executor/contain"
	"github.com/airlockhq/airlock/internal/executor/local"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

type buf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buf) Write(p []byte) (int, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.b.Write(p) }
func (b *buf) String() string              { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func job(t *testing.T, steps ...executor.Step) (*executor.Job, *buf, *buf) {
	var out, errb buf
	for i := range steps {
		steps[i].Index = i
		if steps[i].Name == "" {
			steps[i].Name = "s" + strconv.Itoa(i)
		}
	}
	return &executor.Job{RunID: "run_x", Node: &store.Node{Name: "airlock", Transport: store.TransportLocal}, Steps: steps,
		Env: map[string]string{"PATH": executor.SafePath, "AIRLOCK_PARAM_X": "x-value"}, WorkDir: t.TempDir(), Stdout: &out, Stderr: &errb}, &out, &errb
}

func TestCleanEnvironmentAndWorkDir(t *testing.T) {
	j, out, _ := job(t, executor.Step{Argv: []string{"env"}}, executor.Step{Argv: []string{"pwd"}, Env: map[string]string{"API_TOKEN": "t0k"}})
	t.Setenv("AIRLOCK_LEAK", "must-not-appear")
	res := local.Executor{}.Run(context.Background(), j)
	if res.Status != executor.Succeeded {
		t.Fatalf("%+v", res)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if lines[0] != "AIRLOCK_PARAM_X=x-value" || lines[1] != "PATH="+executor.SafePath || lines[2] != j.WorkDir {
		t.Fatalf("environment or directory not clean:\n%s", out.String())
	}
}

func TestStopsAtFirstFailureUnlessContinue(t *testing.T) {
	j, out, _ := job(t,
		executor.Step{Script: "echo one; exit 3", Shell: "/bin/sh", ContinueOnError: true},
		executor.Step{Argv: []string{"false"}},
		executor.Step{Argv: []string{"echo", "never"}},
	)
	res := local.Executor{}.Run(context.Background(), j)
	if res.Status != executor.Failed || res.ExitCode != 1 || len(res.Steps) != 2 || res.Steps[0].ExitCode != 3 || strings.Contains(out.String(), "never") {
		t.Fatalf("%+v\n%s", res, out.String())
	}
}

// alive reports whether pid runs; a zombie (killed, not yet reaped by
// whoever inherited it) does not.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func TestCancelKillsTheWholeGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	j, _, _ := job(t, executor.Step{Shell: "/bin/sh", Script: "sleep 60 & echo $! > " + pidFile + "; wait"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan executor.Result, 1)
	go func() { done <- local.Executor{}.Run(ctx, j) }()
	var pid int
	testenv.Eventually(t, "the step to start its background child", func() bool {
		b, err := os.ReadFile(pidFile)
		if err == nil && bytes.HasSuffix(b, []byte("\n")) {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return pid != 0
	})
	if !alive(pid) {
		t.Fatalf("background child %d is not running", pid)
	}
	cancel()
	if res := result(t, done); res.Status != executor.Canceled {
		t.Fatalf("%+v", res)
	}
	testenv.Eventually(t, fmt.Sprintf("background child %d to be killed by the cancel", pid), func() bool { return !alive(pid) })
}

func TestStepTimeout(t *testing.T) {
	j, _, errb := job(t, executor.Step{Argv: []string{"sleep", "30"}, Timeout: 200 * time.Millisecond})
	done := make(chan executor.Result, 1)
	go func() { done <- local.Executor{}.Run(context.Background(), j) }()
	res := result(t, done)
	if res.Status != executor.Failed || len(res.Steps) != 1 || !strings.Contains(errb.String(), "timed out") {
		t.Fatalf("%+v %s", res, errb.String())
	}
	// By the step's own record it ended before `sleep 30` could have: it
	// was killed, not waited for.
	if st := res.Steps[0]; st.FinishedAt.Sub(st.StartedAt) >= 30*time.Second {
		t.Fatalf("the step ran %v; want it stopped at its 200ms timeout", st.FinishedAt.Sub(st.StartedAt))
	}
}

// result waits for Run's result, and fails when it has not come within a
// minute: the steps of these tests end, or are ended, well before.
func result(t *testing.T, done <-chan executor.Result) executor.Result {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(time.Minute):
		t.Fatal("waited a minute for Run to return")
		return executor.Result{}
	}
}

// cgroupExecutor is a local executor whose steps run in cgroups. It
// skips, or fails under AIRLOCK_TEST_STRICT=1, where cgroup v2 is not
// usable.
func cgroupExecutor(t *testing.T) local.Executor {
	t.Helper()
	m, err := contain.New(t.TempDir(), contain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close containment: %v", err)
		}
	})
	if m.Cgroup() == "" {
		testenv.Missing(t, "cgroup v2 is not usable here ("+m.Fallback()+"); skipping cgroup containment tests")
	}
	return local.Executor{Contain: m}
}

// pidIn waits for a PID written to file by a step, and kills it at
// cleanup whatever the test did.
func pidIn(t *testing.T, file string) int {
	t.Helper()
	var pid int
	testenv.Eventually(t, "the step to write "+file, func() bool {
		b, err := os.ReadFile(file)
		if err == nil && bytes.HasSuffix(b, []byte("\n")) {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return pid != 0
	})
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// TestSetsidEscapeIsKilled: a process that leaves the step's process
// group and session (setsid) is still the step's: cancel, timeout and
// the step's end kill it.
func TestSetsidEscapeIsKilled(t *testing.T) {
	for _, c := range []struct {
		name    string
		rest    string
		timeout time.Duration
		cancel  bool
		want    string
	}{
		{name: "step end", want: executor.Succeeded},
		{name: "cancel", rest: "wait", cancel: true, want: executor.Canceled},
		{name: "timeout", rest: "wait", timeout: 3 * time.Second, want: executor.Failed},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := cgroupExecutor(t)
			pidFile := filepath.Join(t.TempDir(), "pid")
			j, _, errb := job(t, executor.Step{Shell: "/bin/sh", Timeout: c.timeout,
				Script: "setsid sleep 300 >/dev/null 2>&1 & echo $! > " + pidFile + "\n" + c.rest})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan executor.Result, 1)
			go func() { done <- e.Run(ctx, j) }()
			pid := pidIn(t, pidFile)
			if c.cancel {
				cancel()
			}
			if res := result(t, done); res.Status != c.want {
				t.Fatalf("%+v, want %s\n%s", res, c.want, errb.String())
			}
			testenv.Eventually(t, fmt.Sprintf("the setsid sleep %d to be killed at the %s", pid, c.name), func() bool { return !alive(pid) })
		})
	}
}

// TestBackgroundHoldingOutput: a step whose command exits while a
// process it started in the background holds its output open does not
// wait for that process: it is killed after outputGrace and the step
// fails, saying so. A process that escaped the process group (no
// cgroups) cannot be killed; Airlock stops reading its output.
func TestBackgroundHoldingOutput(t *testing.T) {
	const killed = "a process the step started in the background still holds its output open; it was killed"
	const escaped = "a process the step started in the background still holds its output open and could not be killed"
	const exited0 = "The step's command exited 0, but the step fails: its output may be incomplete"
	for _, c := range []struct {
		name     string
		cgroup   bool
		script   string
		exitCode int
		want     []string
		escapes  bool
	}{
		{name: "exit 0", script: "sleep 300 & echo $! > PID; echo started", exitCode: -1, want: []string{killed, exited0}},
		{name: "exit 3", script: "sleep 300 & echo $! > PID; echo started; exit 3", exitCode: 3, want: []string{killed}},
		{name: "setsid, cgroup", cgroup: true, script: "setsid sleep 300 & echo $! > PID; echo started", exitCode: -1, want: []string{killed, exited0}},
		{name: "setsid, process group", script: "setsid sleep 300 & echo $! > PID; echo started", exitCode: -1, want: []string{escaped, exited0}, escapes: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := local.Executor{}
			if c.cgroup {
				e = cgroupExecutor(t)
			}
			pidFile := filepath.Join(t.TempDir(), "pid")
			j, out, errb := job(t, executor.Step{Shell: "/bin/sh", Script: strings.ReplaceAll(c.script, "PID", pidFile)})
			done := make(chan executor.Result, 1)
			go func() { done <- e.Run(context.Background(), j) }()
			pid := pidIn(t, pidFile)
			res := result(t, done)
			if res.Status != executor.Failed || res.ExitCode != c.exitCode || len(res.Steps) != 1 || res.Steps[0].ExitCode != c.exitCode {
				t.Fatalf("%+v: want failed with exit code %d", res, c.exitCode)
			}
			for _, w := range c.want {
				if !strings.Contains(errb.String(), "airlock: step s0: ") || !strings.Contains(errb.String(), w) {
					t.Fatalf("stderr %q does not say %q", errb.String(), w)
				}
			}
			if strings.Contains(errb.String(), "WaitDelay") || out.String() != "started\n" {
				t.Fatalf("stdout %q, stderr %q", out.String(), errb.String())
			}
			if c.escapes {
				if !alive(pid) {
					t.Fatalf("the setsid sleep %d was killed without cgroups: update docs/runs.md, which says it escapes", pid)
				}
				return
			}
			testenv.Eventually(t, fmt.Sprintf("the background sleep %d to be killed", pid), func() bool { return !alive(pid) })
		})
	}
}

// TestBackgroundOutputWithinGrace: a background process that writes its
// last line and ends soon after the step's command exited gets it
// recorded, and the step succeeds.
func TestBackgroundOutputWithinGrace(t *testing.T) {
	j, out, errb := job(t, executor.Step{Shell: "/bin/sh", Script: "(sleep 0.2; echo late) & echo early"})
	res := local.Executor{}.Run(context.Background(), j)
	if res.Status != executor.Succeeded || out.String() != "early\nlate\n" || errb.String() != "" {
		t.Fatalf("%+v stdout %q stderr %q", res, out.String(), errb.String())
	}
}
