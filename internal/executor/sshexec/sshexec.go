// Package sshexec runs steps on nodes over SSH (golang.org/x/crypto/ssh).
// Host keys are pinned: a node without a pinned key, or whose key differs
// from the pin, fails with a clear message before any credential is
// offered. Every step's remote process group is recorded, so that a
// cancel or timeout kills the remote command and everything it started.
package sshexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock/internal/executor"
)

// Executor is the SSH executor.
type Executor struct {
	DialTimeout time.Duration
}

// HostKeyError reports an unknown or changed host key.
type HostKeyError struct {
	Node, Pinned, Presented string
}

func (e *HostKeyError) Error() string {
	if e.Pinned == "" {
		return fmt.Sprintf("node %s has no pinned host key; refusing to connect (pin it in the inventory: ssh-keyscan the host and check the fingerprint out of band)", e.Node)
	}
	return fmt.Sprintf("host key of node %s changed: pinned %s, presented %s; refusing to connect (the host may have been reinstalled, or something is impersonating it)", e.Node, e.Pinned, e.Presented)
}

func auth(cred []byte) (ssh.AuthMethod, error) {
	if len(cred) == 0 {
		return nil, errors.New("no credential")
	}
	if bytes.Contains(cred, []byte("PRIVATE KEY-----")) {
		signer, err := ssh.ParsePrivateKey(cred)
		if err != nil {
			return nil, fmt.Errorf("credential is not a usable private key: %w", err)
		}
		return ssh.PublicKeys(signer), nil
	}
	return ssh.Password(string(cred)), nil
}

// Dial connects to the job's node with its pinned host key.
func (e Executor) Dial(ctx context.Context, job *executor.Job) (*ssh.Client, error) {
	n := job.Node
	if strings.TrimSpace(n.HostKey) == "" {
		return nil, &HostKeyError{Node: n.Name}
	}
	pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(n.HostKey))
	if err != nil {
		return nil, fmt.Errorf("node %s: pinned host key does not parse: %w", n.Name, err)
	}
	am, err := auth(job.Credential)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	timeout := e.DialTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	cfg := &ssh.ClientConfig{
		User:              n.User,
		Auth:              []ssh.AuthMethod{am},
		HostKeyAlgorithms: []string{pinned.Type()},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if !bytes.Equal(key.Marshal(), pinned.Marshal()) {
				return &HostKeyError{Node: n.Name, Pinned: ssh.FingerprintSHA256(pinned), Presented: ssh.FingerprintSHA256(key)}
			}
			return nil
		},
		Timeout: timeout,
	}
	addr := net.JoinHostPort(n.Address, strconv.Itoa(n.Port))
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node %s: connect %s: %w", n.Name, addr, err)
	}
	// Bound the handshake by the context too.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, hk
		}
		return nil, fmt.Errorf("node %s: ssh handshake: %w", n.Name, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// Quote quotes s for a POSIX shell: single quotes, with each ' written
// as '\”. Any byte but NUL (refused at validation) survives it.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

const pgidMarker = "AIRLOCK_PGID="

// Command builds the remote command line for a step. No variable's value
// is in it — a command line is visible to every user of the node (ps) —
// and so no secret. The login shell runs it; sshd made that shell a
// session leader, so its PID is the process group of everything the step
// starts. It prints that PID on stderr first; reads the environment,
// envLen bytes of EnvScript from stdin, into a file only the node's user
// can read; then replaces itself with env -i running sh, which loads the
// file, removes it and replaces itself with the step. A script follows
// the environment on stdin.
func Command(st executor.Step, envLen int) string {
	var b strings.Builder
	b.WriteString(`echo "` + pgidMarker + `$$" >&2; umask 077; f=$(mktemp) || exit 125; `)
	fmt.Fprintf(&b, `dd bs=1 count=%d of="$f" 2>/dev/null || exit 125; `, envLen)
	b.WriteString(`exec env -i /bin/sh -c '. "$1"; rm -f "$1"; shift; exec "$@"' airlock-step "$f"`)
	if st.Script != "" || st.Argv == nil {
		b.WriteString(" " + Quote(st.Shell) + " -s")
		return b.String()
	}
	for _, a := range st.Argv {
		b.WriteByte(' ')
		b.WriteString(Quote(a))
	}
	return b.String()
}

// EnvScript is the step's environment as the remote sh loads it: one
// export per variable, each value quoted.
func EnvScript(env, stepEnv map[string]string) string {
	var b strings.Builder
	for _, kv := range executor.EnvList(env, stepEnv) {
		k, v, _ := strings.Cut(kv, "=")
		b.WriteString("export " + k + "=" + Quote(v) + "\n")
	}
	return b.String()
}

// Run implements executor.Executor. One SSH connection serves every
// step of the job — one attempt of a run on one node — each step in a
// session of its own; the connection is closed when the job ends and
// never serves another job. A connection found lost when a step is about
// to start (the node's sshd restarted, a network path dropped it) is
// dialled again, with the same pinned host key, and the step runs on the
// new one: nothing of it had started. A step whose connection is lost
// while it runs fails and is never started again, since it may have done
// part of its work; a later step that still runs (the step continues on
// error) dials again.
func (e Executor) Run(ctx context.Context, job *executor.Job) executor.Result {
	c := &conn{e: e, job: job}
	defer c.close()
	if err := c.dial(ctx); err != nil {
		fmt.Fprintf(job.Stderr, "airlock: %v\n", err)
		return executor.Result{Status: executor.Failed, ExitCode: -1, Error: err.Error()}
	}
	var results []executor.StepResult
	for _, st := range job.Steps {
		if ctx.Err() != nil {
			break
		}
		res := e.runStep(ctx, c, job, st)
		results = append(results, res)
		if job.StepDone != nil {
			job.StepDone(res)
		}
		if res.Status == executor.Canceled || (res.Status == executor.Failed && !st.ContinueOnError) {
			break
		}
	}
	return executor.Finish(results, job.Steps, ctx.Err())
}

// conn is a job's connection to its node, dialled again when lost.
type conn struct {
	e      Executor
	job    *executor.Job
	client *ssh.Client
}

func (c *conn) dial(ctx context.Context) error {
	client, err := c.e.Dial(ctx, c.job)
	if err != nil {
		return err
	}
	c.client = client
	return nil
}

func (c *conn) close() {
	if c.client != nil {
		c.client.Close()
		c.client = nil
	}
}

// session opens a session for a step. Opening waits for the node's
// answer, which a dead peer never sends: ctx ending closes the
// connection, and so the wait. A connection that cannot open a session
// (lost, or closed when an earlier step timed out waiting on it) is
// replaced once by a new one.
func (c *conn) session(ctx context.Context, step string) (*ssh.Session, error) {
	if c.client != nil {
		s, err := c.open(ctx)
		if err == nil || ctx.Err() != nil {
			return s, err
		}
		fmt.Fprintf(c.job.Stderr, "airlock: step %s: the connection to node %s is lost (%v); connecting again\n", step, c.job.Node.Name, err)
		c.close()
	}
	if err := c.dial(ctx); err != nil {
		return nil, err
	}
	return c.open(ctx)
}

func (c *conn) open(ctx context.Context) (*ssh.Session, error) {
	client := c.client
	stop := context.AfterFunc(ctx, func() { client.Close() })
	s, err := client.NewSession()
	if !stop() {
		// ctx ended while the session was being opened: the connection
		// is closed, and the session with it.
		if s != nil {
			s.Close()
		}
		return nil, ctx.Err()
	}
	return s, err
}

// pooledCopy is a session's stdout or stderr writer: the session copies
// the remote stream into it through ReadFrom, which copies through a
// pooled buffer (executor.Copy) rather than 32 KiB allocated for each
// stream of each session — most of a fan-out's allocations.
type pooledCopy struct{ w io.Writer }

func (p pooledCopy) Write(b []byte) (int, error) { return p.w.Write(b) }

// ReadFrom copies r to the writer as io.Copy does.
func (p pooledCopy) ReadFrom(r io.Reader) (int64, error) { return executor.Copy(p.w, r) }

// pgidWriter takes the PGID line off the front of stderr.
type pgidWriter struct {
	w     io.Writer
	head  []byte
	done  bool
	mu    sync.Mutex
	pgid  int
	ready chan struct{}
}

func (p *pgidWriter) Write(b []byte) (int, error) {
	if p.done {
		return p.w.Write(b)
	}
	p.head = append(p.head, b...)
	i := bytes.IndexByte(p.head, '\n')
	if i < 0 && len(p.head) < 64 {
		return len(b), nil
	}
	p.done = true
	rest := p.head
	if i >= 0 && bytes.HasPrefix(p.head, []byte(pgidMarker)) {
		n, _ := strconv.Atoi(string(p.head[len(pgidMarker):i]))
		p.mu.Lock()
		p.pgid = n
		p.mu.Unlock()
		rest = p.head[i+1:]
	}
	close(p.ready)
	if len(rest) > 0 {
		if _, err := p.w.Write(rest); err != nil {
			return len(b), err
		}
	}
	return len(b), nil
}

func (p *pgidWriter) get() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pgid
}

func (e Executor) runStep(ctx context.Context, c *conn, job *executor.Job, st executor.Step) executor.StepResult {
	res := executor.StepResult{Index: st.Index, Name: st.Name, StartedAt: time.Now(), ExitCode: -1}
	stepCtx := ctx
	if st.Timeout > 0 {
		var cancel context.CancelFunc
		stepCtx, cancel = context.WithTimeout(ctx, st.Timeout)
		defer cancel()
	}
	sess, err := c.session(stepCtx, st.Name)
	switch {
	case err != nil && ctx.Err() != nil:
		res.Status, res.FinishedAt = executor.Canceled, time.Now()
		return res
	case err != nil && stepCtx.Err() != nil:
		fmt.Fprintf(job.Stderr, "airlock: step %s timed out after %s\n", st.Name, st.Timeout)
		res.Status, res.FinishedAt = executor.Failed, time.Now()
		return res
	case err != nil:
		fmt.Fprintf(job.Stderr, "airlock: step %s: open session: %v\n", st.Name, err)
		res.Status, res.FinishedAt = executor.Failed, time.Now()
		return res
	}
	defer sess.Close()
	client := c.client
	pw := &pgidWriter{w: job.Stderr, ready: make(chan struct{})}
	sess.Stdout, sess.Stderr = pooledCopy{job.Stdout}, pooledCopy{pw}
	envScript := EnvScript(job.Env, st.Env)
	stdin := envScript
	if st.Script != "" || st.Argv == nil {
		stdin += st.Script
	}
	// Stdin is written straight to the channel once the command has
	// started. Session.Stdin would copy it through a pipe of its own and
	// a 32 KiB buffer, allocated for each session — the largest
	// allocation of a fan-out.
	stdinPipe, err := sess.StdinPipe()
	if err != nil {
		fmt.Fprintf(job.Stderr, "airlock: step %s: open stdin: %v\n", st.Name, err)
		res.Status, res.FinishedAt = executor.Failed, time.Now()
		return res
	}
	// Start waits for the node's answer too; a dead peer never sends it.
	stopStart := context.AfterFunc(stepCtx, func() { client.Close() })
	err = sess.Start(Command(st, len(envScript)))
	if !stopStart() {
		res.FinishedAt = time.Now()
		if ctx.Err() != nil {
			res.Status = executor.Canceled
		} else {
			fmt.Fprintf(job.Stderr, "airlock: step %s timed out after %s\n", st.Name, st.Timeout)
			res.Status = executor.Failed
		}
		return res
	}
	if err != nil {
		fmt.Fprintf(job.Stderr, "airlock: step %s: start: %v\n", st.Name, err)
		res.Status, res.FinishedAt = executor.Failed, time.Now()
		return res
	}
	// In a goroutine: a node that reads none of it would block the write
	// once the channel's window is full. A write still blocked ends when
	// the node closes the channel, or at the latest when the job's
	// connection is closed. The step's outcome is its exit status: a
	// command may end without reading all of its input.
	go func() {
		_, _ = io.WriteString(stdinPipe, stdin)
		_ = stdinPipe.Close()
	}()
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
	case <-stepCtx.Done():
		e.kill(client, pw)
		_ = sess.Signal(ssh.SIGKILL)
		_ = sess.Close()
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
		}
		res.FinishedAt = time.Now()
		if ctx.Err() != nil {
			res.Status = executor.Canceled
		} else {
			fmt.Fprintf(job.Stderr, "airlock: step %s timed out after %s\n", st.Name, st.Timeout)
			res.Status = executor.Failed
		}
		return res
	}
	res.FinishedAt = time.Now()
	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		res.Status, res.ExitCode = executor.Succeeded, 0
	case errors.As(err, &exitErr):
		res.Status, res.ExitCode = executor.Failed, exitErr.ExitStatus()
	case errors.As(err, &missing):
		fmt.Fprintf(job.Stderr, "airlock: step %s: the session ended without an exit status (the connection to node %s was lost, or its sshd ended); the step is not run again\n",
			st.Name, job.Node.Name)
		res.Status = executor.Failed
	default:
		fmt.Fprintf(job.Stderr, "airlock: step %s: %v\n", st.Name, err)
		res.Status = executor.Failed
	}
	return res
}

// kill kills the step's remote process group through a second session.
func (e Executor) kill(client *ssh.Client, pw *pgidWriter) {
	select {
	case <-pw.ready:
	case <-time.After(2 * time.Second):
	}
	pgid := pw.get()
	if pgid <= 1 {
		return
	}
	s, err := client.NewSession()
	if err != nil {
		return
	}
	defer s.Close()
	_ = s.Run("kill -KILL -- -" + strconv.Itoa(pgid))
}
