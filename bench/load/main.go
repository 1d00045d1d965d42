// Command load drives a real Airlock server over HTTP from a separate
// process, as `airlock run --follow` does: POST /api/v1/runs waiting up
// to a second for the run to end (Prefer: wait=1), and if it has not
// (or the server predates run-and-wait, or --stream), the run's SSE
// output stream until its end event. It starts the server
// itself (`airlock demo` on a fresh data directory, SQLite unless
// --database-url), installs a trivial procedure (`echo hello`, staging,
// no approval), and prints latency percentiles, runs/s, the server's
// CPU per run (from /proc, without the forked shells) and its memory.
//
//	go run ./bench/load --clients 8 --runs 2000
//
// bench/README.md says how each figure there was made with it.
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
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const procedureSrc = `apiVersion: airlock/v1
kind: Procedure
name: bench-echo
title: Say hello (load harness)
owner: payments
risk: low
idempotent: true
steps:
  - name: hello
    script: echo hello
`

func main() {
	clients := flag.Int("clients", 1, "concurrent clients, each running one run after another")
	runs := flag.Int("runs", 1000, "runs to measure (after the warm-up)")
	warmup := flag.Int("warmup", 100, "runs before measuring")
	binary := flag.String("binary", "", "airlock binary to start (default: build ./cmd/airlock)")
	dbURL := flag.String("database-url", "", "PostgreSQL URL for the server (default: SQLite in a fresh data directory)")
	dataDir := flag.String("data", "", "data directory (default: a fresh temporary one, removed at the end)")
	server := flag.String("server", "", "drive an already running server at this URL instead (no CPU or memory figures); needs --password-file")
	passwords := flag.String("password-file", "", "with --server: the demo's credentials file (airlock demo --credentials-file)")
	logins := flag.Int("logins", 0, "after the runs, make this many concurrent password logins and report the server's peak RSS")
	idle := flag.Duration("idle", 3*time.Second, "how long the server idles before its idle RSS is read")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	stream := flag.Bool("stream", false, "request each run without waiting and follow its output stream (what clients did before run-and-wait)")
	flag.Parse()
	if err := run(*clients, *runs, *warmup, *binary, *dbURL, *dataDir, *server, *passwords, *logins, *idle, *asJSON, *stream); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// Result is what one measurement printed.
type Result struct {
	Clients        int     `json:"clients"`
	Runs           int     `json:"runs"`
	Failed         int     `json:"failed"`
	P50ms          float64 `json:"p50_ms"`
	P95ms          float64 `json:"p95_ms"`
	P99ms          float64 `json:"p99_ms"`
	RunsPerSecond  float64 `json:"runs_per_second"`
	CPUPerRunMS    float64 `json:"server_cpu_per_run_ms,omitempty"`
	ChildCPUPerRun float64 `json:"children_cpu_per_run_ms,omitempty"`
	IdleRSSMiB     float64 `json:"idle_rss_mib,omitempty"`
	AfterRSSMiB    float64 `json:"rss_after_mib,omitempty"`
	PeakRSSMiB     float64 `json:"peak_rss_mib,omitempty"`
	LoginPeakMiB   float64 `json:"peak_rss_after_logins_mib,omitempty"`
	Load1          string  `json:"loadavg"`
	Driver         string  `json:"driver"`
}

type creds struct {
	URL   string `json:"url"`
	Users []struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"users"`
}

func run(clients, runs, warmup int, binary, dbURL, dataDir, serverURL, passwordFile string, logins int, idle time.Duration, asJSON, stream bool) error {
	ctx := context.Background()
	res := Result{Clients: clients, Runs: runs, Driver: "sqlite"}
	if dbURL != "" {
		res.Driver = "postgres"
	}
	var c creds
	pid := 0
	if serverURL == "" {
		tmp, err := os.MkdirTemp("", "airlock-load-")
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
		if dataDir == "" {
			dataDir = filepath.Join(tmp, "data")
		}
		credFile := filepath.Join(tmp, "creds.json")
		args := []string{"demo", "--data", dataDir, "--listen", "127.0.0.1:0", "--credentials-file", credFile}
		if dbURL != "" {
			args = append(args, "--database-url", dbURL)
		}
		cmd := exec.Command(binary, args...)
		logFile, err := os.Create(filepath.Join(tmp, "server.log"))
		if err != nil {
			return err
		}
		defer logFile.Close()
		cmd.Stdout, cmd.Stderr = io.Discard, logFile
		if err := cmd.Start(); err != nil {
			return err
		}
		defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
		pid = cmd.Process.Pid
		deadline := time.Now().Add(60 * time.Second)
		for {
			b, err := os.ReadFile(credFile)
			if err == nil && json.Unmarshal(b, &c) == nil && c.URL != "" {
				break
			}
			if time.Now().After(deadline) {
				return errors.New("the demo did not write its credentials file within 60 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
	} else {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return fmt.Errorf("--password-file: %w", err)
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return err
		}
		c.URL = serverURL
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second}
	cl := &client{Client: harness.Client{Base: strings.TrimRight(c.URL, "/"), HC: hc}, stream: stream}
	pw := map[string]string{}
	for _, u := range c.Users {
		pw[u.Username] = u.Password
	}
	alice, err := cl.Login(ctx, "alice", pw["alice"], "load")
	if err != nil {
		return err
	}
	bob, err := cl.Login(ctx, "bob", pw["bob"], "load")
	if err != nil {
		return err
	}
	if err := cl.install(ctx, alice, bob); err != nil {
		return err
	}
	if pid != 0 {
		time.Sleep(idle) // the demo's start-up work settles
		res.IdleRSSMiB = harness.StatusMiB(pid, "VmRSS")
	}
	if _, _, err := cl.load(ctx, alice, clients, warmup); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	cpu0, child0 := harness.CPUTicks(pid)
	lat, elapsed, err := cl.load(ctx, alice, clients, runs)
	if err != nil {
		return err
	}
	cpu1, child1 := harness.CPUTicks(pid)
	var failed int
	var ok []time.Duration
	for _, l := range lat {
		if l < 0 {
			failed++
			continue
		}
		ok = append(ok, l)
	}
	slices.Sort(ok)
	res.Failed = failed
	res.P50ms, res.P95ms, res.P99ms = harness.Ms(pct(ok, 50)), harness.Ms(pct(ok, 95)), harness.Ms(pct(ok, 99))
	res.RunsPerSecond = float64(len(ok)) / elapsed.Seconds()
	if pid != 0 {
		hz := 100.0 // USER_HZ on Linux
		res.CPUPerRunMS = float64(cpu1-cpu0) / hz * 1000 / float64(runs)
		res.ChildCPUPerRun = float64(child1-child0) / hz * 1000 / float64(runs)
		res.AfterRSSMiB = harness.StatusMiB(pid, "VmRSS")
		res.PeakRSSMiB = harness.StatusMiB(pid, "VmHWM")
	}
	if logins > 0 {
		var wg sync.WaitGroup
		for range logins {
			wg.Add(1)
			go func() { defer wg.Done(); cl.Login(ctx, "dana", pw["dana"], "load") }()
		}
		wg.Wait()
		if pid != 0 {
			res.LoginPeakMiB = harness.StatusMiB(pid, "VmHWM")
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.Load1 = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("driver %s, %d client(s), %d runs (%d failed), GOMAXPROCS %d, load average %s\n", res.Driver, clients, runs, failed,
		runtime.GOMAXPROCS(0), res.Load1)
	fmt.Printf("latency p50 %.2f ms, p95 %.2f ms, p99 %.2f ms; %.0f runs/s\n", res.P50ms, res.P95ms, res.P99ms, res.RunsPerSecond)
	if pid != 0 {
		fmt.Printf("server CPU %.2f ms/run (forked shells %.2f ms/run); RSS idle %.1f MiB, after %.1f MiB, peak %.1f MiB\n",
			res.CPUPerRunMS, res.ChildCPUPerRun, res.IdleRSSMiB, res.AfterRSSMiB, res.PeakRSSMiB)
		if logins > 0 {
			fmt.Printf("peak RSS after %d concurrent logins: %.1f MiB\n", logins, res.LoginPeakMiB)
		}
	}
	return nil
}

type client struct {
	harness.Client
	// stream: request, then follow the output stream, as clients did
	// before run-and-wait.
	stream bool
}

// install proposes the trivial procedure as alice and approves it as
// bob (low risk: ops alone), unless it is in service already.
func (c *client) install(ctx context.Context, alice, bob string) error {
	if c.Do(ctx, "GET", "/api/v1/procedures/bench-echo", alice, nil, nil, nil) == nil {
		return nil
	}
	return c.Install(ctx, procedureSrc, alice, bob, "load harness")
}

// load runs n runs from the given number of clients and returns each
// run's latency (request to end event; -1 for a failed run) and the
// elapsed time.
func (c *client) load(ctx context.Context, token string, clients, n int) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				t0 := time.Now()
				if err := c.followRun(ctx, token, i); err != nil {
					lat[i] = -1
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if e, _ := firstErr.Load().(error); e != nil {
		fmt.Fprintln(os.Stderr, "load: a run failed:", e)
	}
	return lat, elapsed, nil
}

// followRun does what `airlock run --follow` does.
func (c *client) followRun(ctx context.Context, token string, i int) error {
	var r struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Output []struct {
			Data string `json:"data"`
		} `json:"output"`
		OutputMore bool `json:"output_more"`
	}
	hdr := map[string]string{"Idempotency-Key": "load-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.Itoa(i)}
	if !c.stream {
		hdr["Prefer"] = "wait=1"
	}
	if err := c.Do(ctx, "POST", "/api/v1/runs", token, map[string]any{"procedure": "bench-echo", "environment": "staging"}, &r, hdr); err != nil {
		return err
	}
	if r.Output != nil && !r.OutputMore {
		// It ended within the wait: the answer holds the final run and
		// its output (a server before run-and-wait never answers so).
		if r.Status != "succeeded" || len(r.Output) != 1 || r.Output[0].Data != "hello\n" {
			return fmt.Errorf("run %s ended %s with output %v", r.ID, r.Status, r.Output)
		}
		return nil
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", c.Base+"/api/v1/runs/"+r.ID+"/output", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.HC.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("output of %s: %d", r.ID, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	ended := false
	for sc.Scan() {
		line := sc.Text()
		if line == "event: end" {
			ended = true
			continue
		}
		if ended && strings.HasPrefix(line, "data: ") {
			var end struct {
				Status string `json:"status"`
			}
			json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &end)
			if end.Status != "succeeded" {
				return fmt.Errorf("run %s ended %s", r.ID, end.Status)
			}
			return nil
		}
	}
	return fmt.Errorf("the output stream of %s ended without its end event: %v", r.ID, sc.Err())
}

func pct(s []time.Duration, p int) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}
