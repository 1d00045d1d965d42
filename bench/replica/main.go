// Command replica measures, as a client sees it, how soon a run's first
// output reaches a viewer on a replica that does not execute the run. It
// starts two Airlock servers (`airlock demo`) on one PostgreSQL database
// and one data directory — replicas A and B — installs a procedure that
// prints a line and then sleeps a second, and for each run: requests it
// on A, follows its SSE output stream on B and on A, and records the time
// from the request to the first output event on each. It prints the
// medians, and how many runs B claimed itself (those are left out: the
// point is a run executing on the other replica).
//
//	go run ./bench/replica --database-url 'postgres://postgres@127.0.0.1:5432/airlock_bench?sslmode=disable'
//
// --binary runs another build (an older one, for a before figure).
// bench/replica/README.md has the figures and how they were made.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/airlockhq/airlock/bench/internal/harness"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// procedureSrc prints its parent's PID (the server that runs the step),
// so that the harness can tell which replica executed a run.
const procedureSrc = `apiVersion: airlock/v1
kind: Procedure
name: bench-replica
title: Print a line, then wait a second (replica harness)
owner: payments
risk: low
steps:
  - name: hello
    script: |
      echo "hello from $PPID"
      sleep 1
`

func main() {
	runs := flag.Int("runs", 10, "runs to measure")
	binary := flag.String("binary", "", "airlock binary to start (default: build ./cmd/airlock)")
	dbURL := flag.String("database-url", "", "PostgreSQL URL both replicas share (required; its schema is taken over: use a scratch database)")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	flag.Parse()
	if *dbURL == "" {
		fmt.Fprintln(os.Stderr, "replica: --database-url is required (a scratch PostgreSQL database)")
		os.Exit(2)
	}
	if err := run(*runs, *binary, *dbURL, *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		os.Exit(1)
	}
}

// Result is what one measurement printed.
type Result struct {
	Runs       int     `json:"runs"`
	ClaimedByB int     `json:"claimed_by_b"`
	Unknown    int     `json:"executor_unknown"`
	MedianAms  float64 `json:"median_first_output_a_ms"`
	MedianBms  float64 `json:"median_first_output_b_ms"`
	MaxBms     float64 `json:"max_first_output_b_ms"`
	Load       string  `json:"loadavg"`
}

type creds struct {
	URL   string `json:"url"`
	Users []struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"users"`
}

// replica is one started server.
type replica struct {
	cmd   *exec.Cmd
	creds creds
}

func start(binary, tmp, name, data, dbURL string) (*replica, error) {
	credFile := filepath.Join(tmp, name+"-creds.json")
	logFile, err := os.Create(filepath.Join(tmp, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "demo", "--data", data, "--listen", "127.0.0.1:0", "--credentials-file", credFile, "--database-url", dbURL)
	cmd.Stdout, cmd.Stderr = io.Discard, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	logFile.Close() // the child has it
	r := &replica{cmd: cmd}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(credFile)
		if err == nil && json.Unmarshal(b, &r.creds) == nil && r.creds.URL != "" {
			return r, nil
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("replica %s did not write its credentials file within 60 s (see %s.log)", name, name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *replica) stop() { r.cmd.Process.Signal(os.Interrupt); r.cmd.Wait() }

func run(n int, binary, dbURL string, asJSON bool) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "airlock-replica-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if binary == "" {
		binary = filepath.Join(tmp, "airlock")
		build := exec.Command("go", "build", "-o", binary, "./cmd/airlock")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	data := filepath.Join(tmp, "data") // shared: the keys are in it
	a, err := start(binary, tmp, "a", data, dbURL)
	if err != nil {
		return err
	}
	defer a.stop()
	b, err := start(binary, tmp, "b", data, dbURL)
	if err != nil {
		return err
	}
	defer b.stop()

	hc := &http.Client{Timeout: 60 * time.Second}
	ca := &client{harness.Client{Base: strings.TrimRight(a.creds.URL, "/"), HC: hc}}
	cb := &client{harness.Client{Base: strings.TrimRight(b.creds.URL, "/"), HC: hc}}
	pw := map[string]string{}
	for _, u := range a.creds.Users {
		pw[u.Username] = u.Password
	}
	if pw["alice"] == "" {
		return errors.New("replica A wrote no demo passwords: use a scratch database (the demo creates its users only on an empty one)")
	}
	alice, err := ca.Login(ctx, "alice", pw["alice"], "replica-bench")
	if err != nil {
		return err
	}
	bob, err := ca.Login(ctx, "bob", pw["bob"], "replica-bench")
	if err != nil {
		return err
	}
	if err := ca.install(ctx, alice, bob); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // start-up work settles
	res := Result{Runs: n}
	var onA, onB []time.Duration
	for i := 0; len(onB) < n && i < 3*n; i++ {
		m, err := measure(ctx, ca, cb, alice, i)
		if err != nil {
			return err
		}
		switch m.executor {
		case a.cmd.Process.Pid:
		case b.cmd.Process.Pid:
			res.ClaimedByB++
			continue
		default:
			res.Unknown++
			continue
		}
		onA, onB = append(onA, m.a), append(onB, m.b)
	}
	if len(onB) == 0 {
		return fmt.Errorf("no run executed on replica A (%d on B, %d unknown)", res.ClaimedByB, res.Unknown)
	}
	res.Runs = len(onB)
	res.MedianAms, res.MedianBms = harness.Ms(median(onA)), harness.Ms(median(onB))
	res.MaxBms = harness.Ms(slices.Max(onB))
	res.Load = harness.Loadavg()
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("%d runs executed on A (%d claimed by B and %d unknown left out); load average %s\n", res.Runs, res.ClaimedByB, res.Unknown, res.Load)
	fmt.Printf("request to first output: on A (executing) median %.1f ms; on B median %.1f ms, max %.1f ms\n", res.MedianAms, res.MedianBms, res.MaxBms)
	return nil
}

type measurement struct {
	a, b     time.Duration
	executor int // PID of the server that ran the step
}

// measure requests one run on A and follows its output on A and B.
func measure(ctx context.Context, ca, cb *client, token string, i int) (*measurement, error) {
	t0 := time.Now()
	var r struct {
		ID string `json:"id"`
	}
	hdr := map[string]string{"Idempotency-Key": "replica-" + strconv.FormatInt(t0.UnixNano(), 36) + "-" + strconv.Itoa(i)}
	if err := ca.Do(ctx, "POST", "/api/v1/runs", token, map[string]any{"procedure": "bench-replica", "environment": "staging"}, &r, hdr); err != nil {
		return nil, err
	}
	type seen struct {
		d    time.Duration
		line string
		err  error
	}
	ra, rb := make(chan seen, 1), make(chan seen, 1)
	for _, f := range []struct {
		c  *client
		ch chan seen
	}{{ca, ra}, {cb, rb}} {
		go func() {
			line, err := f.c.firstOutput(ctx, token, r.ID)
			f.ch <- seen{time.Since(t0), line, err}
		}()
	}
	sa, sb := <-ra, <-rb
	if sa.err != nil {
		return nil, fmt.Errorf("replica A: %w", sa.err)
	}
	if sb.err != nil {
		return nil, fmt.Errorf("replica B: %w", sb.err)
	}
	m := &measurement{a: sa.d, b: sb.d}
	if p, ok := strings.CutPrefix(strings.TrimSpace(sa.line), "hello from "); ok {
		m.executor, _ = strconv.Atoi(p)
	}
	// Let the run end before the next: one run at a time.
	time.Sleep(1200 * time.Millisecond)
	return m, nil
}

type client struct{ harness.Client }

func (c *client) install(ctx context.Context, alice, bob string) error {
	if c.Do(ctx, "GET", "/api/v1/procedures/bench-replica", alice, nil, nil, nil) == nil {
		return nil
	}
	return c.Install(ctx, procedureSrc, alice, bob, "replica harness")
}

// firstOutput follows the run's SSE stream until its first output event
// and returns that event's text.
func (c *client) firstOutput(ctx context.Context, token, id string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", c.Base+"/api/v1/runs/"+id+"/output", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.HC.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("output of %s: %d", id, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	output := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "event: output":
			output = true
		case output && strings.HasPrefix(line, "data: "):
			var ch struct {
				Data string `json:"data"`
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ch); err != nil {
				return "", err
			}
			return ch.Data, nil
		case line == "event: end":
			return "", fmt.Errorf("run %s ended before any output", id)
		}
	}
	return "", fmt.Errorf("the output stream of %s ended without output: %v", id, sc.Err())
}

func median(s []time.Duration) time.Duration {
	s = slices.Clone(s)
	slices.Sort(s)
	return s[len(s)/2]
}
