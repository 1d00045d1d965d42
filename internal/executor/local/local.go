// Package local runs steps on the Airlock host: each step in its own
// process group, with a clean environment holding only the declared
// variables, in the run's working directory. Cancellation and timeouts
// kill the whole process group.
package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/airlockhq/airlock/internal/executor"
)

// Executor is the local executor.
type Executor struct{}

// lookPath finds a program in the safe PATH, not in Airlock's own.
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(executor.SafePath) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in %s", name, executor.SafePath)
}

// Run implements executor.Executor.
func (Executor) Run(ctx context.Context, job *executor.Job) executor.Result {
	if err := os.MkdirAll(job.WorkDir, 0o700); err != nil {
		return executor.Result{Status: executor.Failed, ExitCode: -1, Error: "working directory: " + err.Error()}
	}
	var results []executor.StepResult
	failed := false
	for _, st := range job.Steps {
		if failed || ctx.Err() != nil {
			break
		}
		res := runStep(ctx, job, st)
		results = append(results, res)
		if job.StepDone != nil {
			job.StepDone(res)
		}
		if res.Status == executor.Canceled || (res.Status == executor.Failed && !st.ContinueOnError) {
			failed = true
		}
	}
	return executor.Finish(results, job.Steps, ctx.Err())
}

func runStep(ctx context.Context, job *executor.Job, st executor.Step) executor.StepResult {
	res := executor.StepResult{Index: st.Index, Name: st.Name, StartedAt: time.Now(), ExitCode: -1}
	fail := func(format string, args ...any) executor.StepResult {
		fmt.Fprintf(job.Stderr, "airlock: step %s: %s\n", st.Name, fmt.Sprintf(format, args...))
		res.Status, res.FinishedAt = executor.Failed, time.Now()
		return res
	}
	argv := st.Argv
	if st.Script != "" || argv == nil {
		script := filepath.Join(job.WorkDir, fmt.Sprintf("step-%d-%s.sh", st.Index, st.Name))
		if err := os.WriteFile(script, []byte(st.Script), 0o700); err != nil {
			return fail("write script: %v", err)
		}
		argv = []string{st.Shell, script}
	}
	prog, err := lookPath(argv[0])
	if err != nil {
		return fail("%v", err)
	}
	stepCtx := ctx
	if st.Timeout > 0 {
		var cancel context.CancelFunc
		stepCtx, cancel = context.WithTimeout(ctx, st.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(stepCtx, prog, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Dir = job.WorkDir
	cmd.Env = executor.EnvList(job.Env, st.Env)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = job.Stdout, job.Stderr
	// Own process group (killed whole on cancel); killed if Airlock dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		// The whole group: whatever the step started goes too.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	res.FinishedAt = time.Now()
	// Anything left in the group once the leader exited goes as well.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	var exitErr *exec.ExitError
	switch {
	case stepCtx.Err() != nil && ctx.Err() != nil:
		res.Status = executor.Canceled
	case stepCtx.Err() != nil:
		fmt.Fprintf(job.Stderr, "airlock: step %s timed out after %s\n", st.Name, st.Timeout)
		res.Status = executor.Failed
	case err == nil:
		res.Status, res.ExitCode = executor.Succeeded, 0
	case errors.As(err, &exitErr):
		res.Status, res.ExitCode = executor.Failed, exitErr.ExitCode()
	default:
		return fail("%v", err)
	}
	return res
}
