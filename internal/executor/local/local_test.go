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
