// Package local runs steps on the Airlock host, each in a clean
// environment holding only the declared variables, in the run's working
// directory, contained by package contain: in a cgroup of its own where
// cgroup v2 is usable, else in a process group of its own. Cancellation,
// timeouts and the end of a step kill everything the step started.
package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock/internal/executor"
	"github.com/airlockhq/airlock/internal/executor/contain"
)

// Executor is the local executor. Contain, when set, contains each
// step's processes (package contain): in a cgroup of its own where
// cgroup v2 is usable, recorded so that a later start kills what a
// killed Airlock left. The zero value gives each step a process group of
// its own, killed whole, and nothing is recorded. Dirs, when set, keeps
// ended jobs' working directories for later jobs, where steps run in
// cgroups; else each job's directory is made and removed.
type Executor struct {
	Contain *contain.Manager
	Dirs    *WorkDirs
}

// outputGrace is how long a step's output may stay open after its
// command (the process Airlock started) exited: a background process
// that writes a last line and ends gets it recorded. One that still
// holds the output then is killed, and the step fails.
const outputGrace = 2 * time.Second

// drainGrace is how long the output may take to close once the step's
// processes were killed. Only a process that escaped containment (in
// the process-group fallback: one that called setsid) keeps it open
// longer; Airlock then stops reading it.
const drainGrace = 2 * time.Second

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

// Run implements executor.Executor. It makes job.WorkDir and removes it
// when the job ends.
func (e Executor) Run(ctx context.Context, job *executor.Job) executor.Result {
	if err := e.Dirs.make(job.WorkDir); err != nil {
		return executor.Result{Status: executor.Failed, ExitCode: -1, Error: err.Error()}
	}
	// Every process the job started is known to have ended when each
	// step's cgroup was seen empty, but for one a step moved to another
	// cgroup itself (it may, as Airlock's user: see the design notes).
	ended := e.Contain.Cgroup() != ""
	defer func() { e.Dirs.done(job.WorkDir, ended) }()
	var results []executor.StepResult
	failed := false
	for _, st := range job.Steps {
		if failed || ctx.Err() != nil {
			break
		}
		res, contained := e.runStep(ctx, job, st)
		ended = ended && contained
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

// runStep runs one step; contained is false when processes it started
// may still be running.
func (e Executor) runStep(ctx context.Context, job *executor.Job, st executor.Step) (_ executor.StepResult, contained bool) {
	res := executor.StepResult{Index: st.Index, Name: st.Name, StartedAt: time.Now(), ExitCode: -1}
	contained = true
	fail := func(format string, args ...any) (executor.StepResult, bool) {
		fmt.Fprintf(job.Stderr, "airlock: step %s: %s\n", st.Name, fmt.Sprintf(format, args...))
		res.Status, res.FinishedAt = executor.Failed, time.Now()
		return res, contained
	}
	argv := st.Argv
	// A script reaches its shell through a pipe (/dev/fd/3), not a file:
	// nothing to write to and remove from the disk per step.
	var scriptR, scriptW *os.File
	if st.Script != "" || argv == nil {
		var err error
		if scriptR, scriptW, err = os.Pipe(); err != nil {
			return fail("script pipe: %v", err)
		}
		defer scriptR.Close()
		defer func() {
			if scriptW != nil {
				scriptW.Close()
			}
		}()
		argv = []string{st.Shell, "/dev/fd/3"}
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
	// Output through pipes of our own, not os/exec's: the step ends when
	// its command exits, not when the last holder of its output does.
	out, err := newOutputs(job.Stdout, job.Stderr)
	if err != nil {
		return fail("output pipes: %v", err)
	}
	cmd.Stdout, cmd.Stderr = out.stdout, out.stderr
	if scriptR != nil {
		cmd.ExtraFiles = []*os.File{scriptR}
	}
	// Should killing the step on cancel or timeout fail, os/exec kills
	// the command itself after this.
	cmd.WaitDelay = 2 * time.Second
	// Start sets cmd.Cancel: cancel and timeout kill the whole step.
	g, err := e.Contain.Start(cmd)
	out.started()
	if scriptR != nil && err == nil {
		scriptR.Close()
		// Written while the shell reads (a script larger than the pipe's
		// buffer), and closed so that the shell sees its end.
		go func(w *os.File, script string) {
			_, _ = io.WriteString(w, script)
			w.Close()
		}(scriptW, st.Script)
		scriptW = nil
	}
	if err != nil {
		out.close()
		return fail("%v", err)
	}
	held := false
	waitErr, containErr := g.Wait(func() {
		// The command has exited; whatever it left running is killed
		// when this returns.
		t := time.NewTimer(outputGrace)
		defer t.Stop()
		select {
		case <-out.done:
		case <-stepCtx.Done():
		case <-t.C:
			held = stepCtx.Err() == nil
		}
	})
	res.FinishedAt = time.Now()
	drained := out.wait(drainGrace)
	contained = drained
	out.close()
	// The output's copiers are done: job.Stderr is this goroutine's.
	exitCode := -1
	var exitErr *exec.ExitError
	switch {
	case waitErr == nil:
		exitCode = 0
	case errors.As(waitErr, &exitErr):
		exitCode = exitErr.ExitCode()
	}
	if held || !drained {
		msg := "a process the step started in the background still holds its output open; it was killed"
		if !drained {
			msg = "a process the step started in the background still holds its output open and could not be killed " +
				"(it left the step's process group); Airlock stopped reading its output"
		}
		if held && exitCode == 0 {
			msg += ". The step's command exited 0, but the step fails: its output may be incomplete"
		}
		fmt.Fprintf(job.Stderr, "airlock: step %s: %s\n", st.Name, msg)
	}
	if containErr != nil {
		contained = false
		fmt.Fprintf(job.Stderr, "airlock: step %s: processes it started may still be running: %v\n", st.Name, containErr)
	}
	switch {
	case stepCtx.Err() != nil && ctx.Err() != nil:
		res.Status = executor.Canceled
	case stepCtx.Err() != nil:
		fmt.Fprintf(job.Stderr, "airlock: step %s timed out after %s\n", st.Name, st.Timeout)
		res.Status = executor.Failed
	case held:
		res.Status, res.ExitCode = executor.Failed, exitCode
		if exitCode == 0 {
			res.ExitCode = -1
		}
	case waitErr == nil && out.err != nil:
		return fail("output: %v", out.err)
	case waitErr == nil:
		res.Status, res.ExitCode = executor.Succeeded, 0
	case exitErr != nil:
		res.Status, res.ExitCode = executor.Failed, exitCode
	default:
		return fail("%v", waitErr)
	}
	return res, contained
}

// outputs carries a step's stdout and stderr through pipes this process
// reads, one goroutine per pipe, as os/exec would; but the step's end
// does not wait for them.
type outputs struct {
	stdout, stderr *os.File // the step's ends
	readers        []*os.File
	done           chan struct{} // closed when every copier has returned
	err            error         // the first error writing the output, once done
}

func newOutputs(stdout, stderr io.Writer) (*outputs, error) {
	o := &outputs{done: make(chan struct{})}
	var wg sync.WaitGroup
	var mu sync.Mutex
	pipe := func(w io.Writer) (*os.File, error) {
		if w == nil {
			w = io.Discard
		}
		r, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		o.readers = append(o.readers, r)
		wg.Go(func() {
			_, err := executor.Copy(w, r)
			// The step writing on gets EPIPE, as with os/exec, rather
			// than blocking on a pipe nobody reads.
			r.Close()
			if err != nil && !errors.Is(err, os.ErrClosed) {
				mu.Lock()
				o.err = cmp.Or(o.err, err)
				mu.Unlock()
			}
		})
		return pw, nil
	}
	var err error
	if o.stdout, err = pipe(stdout); err == nil {
		if sameWriter(stdout, stderr) {
			o.stderr = o.stdout
		} else {
			o.stderr, err = pipe(stderr)
		}
	}
	go func() { wg.Wait(); close(o.done) }()
	if err != nil {
		o.started()
		o.close()
		return nil, err
	}
	return o, nil
}

// sameWriter reports whether a and b are one writer, which then gets
// one pipe, so that it is written from one goroutine (as os/exec does).
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil { // uncomparable dynamic type
			same = false
		}
	}()
	return a == b
}

// started closes this process's copies of the step's ends, once the step
// has its own (or failed to start): the output ends when the step's
// processes have all closed theirs.
func (o *outputs) started() {
	if o.stdout != nil {
		o.stdout.Close()
	}
	if o.stderr != nil && o.stderr != o.stdout {
		o.stderr.Close()
	}
}

// wait reports whether the output ended within d.
func (o *outputs) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-o.done:
		return true
	case <-t.C:
		return false
	}
}

// close stops reading the output and waits for the copiers.
func (o *outputs) close() {
	for _, r := range o.readers {
		r.Close()
	}
	<-o.done
}
