// Package executor defines what an executor is given and returns: the
// steps of one run on one node, already expanded (argv elements
// substituted one by one, scripts verbatim), the environment, and the
// writers for the node's output. The executors live in subpackages named
// for what they wrap: local (os/exec, process groups) and sshexec
// (golang.org/x/crypto/ssh).
package executor

import (
	"context"
	"io"
	"slices"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// Step is one expanded step.
type Step struct {
	Index int
	Name  string
	// Argv for exec steps: each element is one argument, never parsed
	// by a shell.
	Argv []string
	// Script and Shell for script steps: the script is the shell's input.
	Script string
	Shell  string
	// Env holds the step's own variables (its secrets), on top of Job.Env.
	Env             map[string]string
	Timeout         time.Duration
	ContinueOnError bool
}

// Job is one run on one node.
type Job struct {
	RunID string
	Node  *store.Node
	Steps []Step
	// Env is the environment every step gets, and nothing else:
	// AIRLOCK_PARAM_*, AIRLOCK_RUN_ID, AIRLOCK_ENVIRONMENT, AIRLOCK_NODE.
	Env map[string]string
	// WorkDir is the local working directory (local executor).
	WorkDir string
	// Credential is the resolved SSH private key (PEM) or password.
	Credential []byte
	// Stdout and Stderr receive the node's output; they must be safe for
	// use from one goroutine each.
	Stdout, Stderr io.Writer
	// StepDone, when set, is called as each step finishes.
	StepDone func(StepResult)
}

// Step and node outcomes.
const (
	Succeeded = "succeeded"
	Failed    = "failed"
	Canceled  = "canceled"
	Skipped   = "skipped"
	Running   = "running"
)

// StepResult is one step's outcome.
type StepResult struct {
	Index      int
	Name       string
	Status     string
	ExitCode   int // -1 when the step did not exit normally
	StartedAt  time.Time
	FinishedAt time.Time
}

// Result is the outcome on the node. Error explains a failure that is
// not a step's exit status (an unreachable node, a changed host key).
type Result struct {
	Status   string
	ExitCode int
	Error    string
	Steps    []StepResult
}

// Executor runs a job. Cancelling ctx stops the current step and kills
// everything it started; the result is then Canceled.
type Executor interface {
	Run(ctx context.Context, job *Job) Result
}

// SafePath is the PATH steps run with.
const SafePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// EnvList renders env (plus the step's own) as sorted KEY=value pairs.
func EnvList(env, step map[string]string) []string {
	out := make([]string, 0, len(env)+len(step))
	for k, v := range env {
		if _, over := step[k]; !over {
			out = append(out, k+"="+v)
		}
	}
	for k, v := range step {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// Finish folds step results into a node result: the node fails when a
// step failed that does not continue on error.
func Finish(steps []StepResult, stepsDef []Step, ctxErr error) Result {
	r := Result{Status: Succeeded, Steps: steps}
	for i, s := range steps {
		if s.Status == Canceled {
			r.Status, r.ExitCode = Canceled, s.ExitCode
			return r
		}
		if s.Status == Failed && !stepsDef[i].ContinueOnError {
			r.Status, r.ExitCode = Failed, s.ExitCode
		}
	}
	if ctxErr != nil && r.Status == Succeeded && len(steps) < len(stepsDef) {
		r.Status = Canceled
	}
	return r
}
