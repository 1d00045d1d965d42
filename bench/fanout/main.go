// Command fanout measures an SSH fan-out as a user sees it: a run of a
// procedure on many nodes, requested over HTTP from this process and
// followed on its output stream until its end, against a bare
// golang.org/x/crypto/ssh loop doing the same work on the same nodes with
// the same bound, in the same invocation, rounds interleaved.
//
// The nodes are simulated in this process (internal/testenv/fleet: one
// SSH server per node, its own port and host key, built-in commands, no
// fork), or with --sshd N real sshd processes on loopback (as the demo
// starts them). The server is the airlock binary (built from ./cmd/airlock
// unless --binary), started as `airlock demo` on a fresh data directory;
// the nodes, their key (a secret) and the procedure (steps of
// `exec: [echo, ok]`, tag fleet, staging, parallel P) are added over the
// API.
//
//	go run ./bench/fanout --nodes 1000 --parallel 100
//	go run ./bench/fanout --sshd 50 --parallel 50 --steps 5
//
// It prints each round and the medians: Airlock's time from the request
// to the end event, the bare loop's (one connection per node, a session
// per step), with --steps > 1 also the bare loop with a connection per
// step (what reusing the connection saves), the ratio, the server's CPU
// and its peak RSS during the runs (VmHWM, reset before each run through
// /proc/PID/clear_refs), and the load average. bench/fleet/README.md has
// the figures.
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
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/testenv/fleet"
)

// target is one node as the harness knows it.
type target struct {
	Addr    string
	HostKey string
}

type options struct {
	nodes, sshd, parallel, steps, rounds int
	binary                               string
	asJSON                               bool
}

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 1000, "simulated SSH nodes (ignored with --sshd)")
	flag.IntVar(&o.sshd, "sshd", 0, "use this many real sshd nodes on loopback instead of simulated ones")
	flag.IntVar(&o.parallel, "parallel", 100, "the procedure's targets.parallel, and the bare loop's bound (1 to 100)")
	flag.IntVar(&o.steps, "steps", 1, "steps of `echo ok` in the procedure")
	flag.IntVar(&o.rounds, "rounds", 3, "measured rounds (each: one Airlock run, then the bare loops), after one warm-up round")
	flag.StringVar(&o.binary, "binary", "", "airlock binary to start (default: build ./cmd/airlock)")
	flag.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

// Round is one measured round.
type Round struct {
	AirlockMS     float64 `json:"airlock_ms"`
	BareMS        float64 `json:"bare_ms"`
	BarePerStepMS float64 `json:"bare_dial_per_step_ms,omitempty"`
	ServerCPUms   float64 `json:"server_cpu_ms"`
	// What the server's Go heap allocated during the run (its
	// go_memstats_alloc_bytes_total): the run's garbage, which this
	// machine's speed does not change.
	ServerAllocMiB float64 `json:"server_alloc_mib"`
	// The harness's own CPU in each phase: the simulated fleet's (it
	// serves the nodes in this process) and the client's — the API
	// client's in Airlock's phase, the bare loop's in its own. With the
	// server's, the machine time each phase took: CPURatio.
	AirlockHarnessCPUms float64 `json:"airlock_phase_harness_cpu_ms"`
	BareHarnessCPUms    float64 `json:"bare_phase_harness_cpu_ms"`
	CPURatio            float64 `json:"cpu_ratio"`
	PeakRSSMiB          float64 `json:"server_peak_rss_mib"`
	LoadAverage         string  `json:"loadavg"`
	AirlockRatio        float64 `json:"ratio"`
	FailedBareRuns      int     `json:"failed_bare_sessions,omitempty"`
}

// Result is what one invocation printed.
type Result struct {
	Nodes       int     `json:"nodes"`
	Kind        string  `json:"kind"`
	Parallel    int     `json:"parallel"`
	Steps       int     `json:"steps"`
	Rounds      []Round `json:"rounds"`
	Median      Round   `json:"median"`
	IdleRSSMiB  float64 `json:"server_rss_before_mib"`
	LoadStart   string  `json:"loadavg_start"`
	GOMAXPROCS  int     `json:"gomaxprocs"`
	SetupSecond float64 `json:"setup_s"`
}

func run(o options) error {
	if o.parallel < 1 || o.parallel > 100 {
		return errors.New("--parallel: expected 1 to 100 (a procedure's bound)")
	}
	ctx := context.Background()
	res := Result{Kind: "simulated", Parallel: o.parallel, Steps: o.steps, GOMAXPROCS: runtime.GOMAXPROCS(0), LoadStart: harness.Loadavg()}
	setup := time.Now()
	tmp, err := os.MkdirTemp("", "airlock-fanout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var targets []target
	var user string
	var clientKey []byte
	if o.sshd > 0 {
		f, err := demo.StartSSHD(filepath.Join(tmp, "sshd"), o.sshd)
		if err != nil {
			return err
		}
		defer f.Stop()
		user, clientKey, res.Kind = f.User, f.ClientKey, "sshd"
		for _, n := range f.Nodes {
			targets = append(targets, target{net.JoinHostPort("127.0.0.1", strconv.Itoa(n.Port)), n.HostKey})
		}
	} else {
		f, err := fleet.Start(o.nodes, fleet.Options{})
		if err != nil {
			return err
		}
		defer f.Stop()
		user, clientKey = f.User, f.ClientKey
		for _, n := range f.Nodes {
			targets = append(targets, target{n.Addr(), n.HostKey})
		}
	}
	res.Nodes = len(targets)

	srv, err := startServer(tmp, o.binary)
	if err != nil {
		return err
	}
	defer srv.stop()
	cl := &client{harness.Client{Base: srv.url, HC: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}}
	alice, err := cl.Login(ctx, "alice", srv.passwords["alice"], "fanout")
	if err != nil {
		return err
	}
	bob, err := cl.Login(ctx, "bob", srv.passwords["bob"], "fanout")
	if err != nil {
		return err
	}
	if err := cl.addNodes(ctx, bob, user, clientKey, targets); err != nil {
		return err
	}
	if err := cl.install(ctx, alice, bob, o.parallel, o.steps); err != nil {
		return err
	}
	res.SetupSecond = time.Since(setup).Seconds()
	res.IdleRSSMiB = harness.StatusMiB(srv.pid, "VmRSS")

	signer, err := ssh.ParsePrivateKey(clientKey)
	if err != nil {
		return err
	}
	bareCfg := bare{user: user, signer: signer, targets: targets, parallel: o.parallel, steps: o.steps}
	for i := range o.rounds + 1 {
		var r Round
		clearPeak(srv.pid)
		cpu0, own0, alloc0 := selfTicks(srv.pid), ownCPU(), cl.allocated(ctx)
		d, err := cl.runAndFollow(ctx, alice, len(targets))
		if err != nil {
			return err
		}
		r.AirlockMS = harness.Ms(d)
		r.ServerCPUms = float64(selfTicks(srv.pid)-cpu0) * 10 // USER_HZ 100
		own1 := ownCPU()
		r.ServerAllocMiB = (cl.allocated(ctx) - alloc0) / (1 << 20)
		r.AirlockHarnessCPUms = harness.Ms(own1 - own0)
		r.PeakRSSMiB = harness.StatusMiB(srv.pid, "VmHWM")
		d, failed := bareCfg.loop(false)
		r.BareMS, r.FailedBareRuns = harness.Ms(d), failed
		r.BareHarnessCPUms = harness.Ms(ownCPU() - own1)
		r.CPURatio = (r.ServerCPUms + r.AirlockHarnessCPUms) / r.BareHarnessCPUms
		if o.steps > 1 {
			d, failed = bareCfg.loop(true)
			r.BarePerStepMS, r.FailedBareRuns = harness.Ms(d), r.FailedBareRuns+failed
		}
		r.AirlockRatio = r.AirlockMS / r.BareMS
		r.LoadAverage = harness.Loadavg()
		if i == 0 {
			continue // warm-up
		}
		if !o.asJSON {
			fmt.Fprintf(os.Stderr, "round %d: airlock %.0f ms, bare %.0f ms, ratio %.2f, server CPU %.0f ms, allocated %.0f MiB, harness CPU %.0f / %.0f ms, CPU ratio %.2f, peak RSS %.1f MiB, load %s\n",
				i, r.AirlockMS, r.BareMS, r.AirlockRatio, r.ServerCPUms, r.ServerAllocMiB, r.AirlockHarnessCPUms, r.BareHarnessCPUms, r.CPURatio, r.PeakRSSMiB, r.LoadAverage)
		}
		res.Rounds = append(res.Rounds, r)
	}
	res.Median = Round{
		AirlockMS:           median(res.Rounds, func(r Round) float64 { return r.AirlockMS }),
		BareMS:              median(res.Rounds, func(r Round) float64 { return r.BareMS }),
		BarePerStepMS:       median(res.Rounds, func(r Round) float64 { return r.BarePerStepMS }),
		ServerCPUms:         median(res.Rounds, func(r Round) float64 { return r.ServerCPUms }),
		ServerAllocMiB:      median(res.Rounds, func(r Round) float64 { return r.ServerAllocMiB }),
		PeakRSSMiB:          median(res.Rounds, func(r Round) float64 { return r.PeakRSSMiB }),
		AirlockRatio:        median(res.Rounds, func(r Round) float64 { return r.AirlockRatio }),
		AirlockHarnessCPUms: median(res.Rounds, func(r Round) float64 { return r.AirlockHarnessCPUms }),
		BareHarnessCPUms:    median(res.Rounds, func(r Round) float64 { return r.BareHarnessCPUms }),
		CPURatio:            median(res.Rounds, func(r Round) float64 { return r.CPURatio }),
		LoadAverage:         harness.Loadavg(),
	}
	if o.asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	m := res.Median
	fmt.Printf("%d %s nodes, %d step(s) of echo ok, parallel %d, GOMAXPROCS %d, median of %d rounds; load average %s at the start, %s at the end\n",
		res.Nodes, res.Kind, o.steps, o.parallel, res.GOMAXPROCS, len(res.Rounds), res.LoadStart, m.LoadAverage)
	fmt.Printf("airlock (request → end event) %.0f ms; bare x/crypto/ssh loop %.0f ms; ratio %.2f\n", m.AirlockMS, m.BareMS, m.AirlockRatio)
	if o.steps > 1 {
		fmt.Printf("bare loop with a connection per step instead of per node: %.0f ms\n", m.BarePerStepMS)
	}
	fmt.Printf("server CPU %.0f ms per run (%.2f ms per node), %.0f MiB allocated; server RSS before %.1f MiB, peak during a run %.1f MiB\n",
		m.ServerCPUms, m.ServerCPUms/float64(res.Nodes), m.ServerAllocMiB, res.IdleRSSMiB, m.PeakRSSMiB)
	fmt.Printf("machine time, Airlock's phase / the bare loop's (server + this process, which serves the fleet): %.2f\n", m.CPURatio)
	return nil
}

func median(rs []Round, f func(Round) float64) float64 {
	v := make([]float64, 0, len(rs))
	for _, r := range rs {
		v = append(v, f(r))
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// bare is the baseline: what a careful Go program does with
// golang.org/x/crypto/ssh alone — dial with the pinned host key, a
// session per step running `echo ok`, at most parallel nodes at once.
type bare struct {
	user     string
	signer   ssh.Signer
	targets  []target
	parallel int
	steps    int
}

// loop runs the baseline once; dialPerStep makes a connection per step
// instead of one per node. It returns the time and the failures.
func (b bare) loop(dialPerStep bool) (time.Duration, int) {
	t0 := time.Now()
	sem := make(chan struct{}, b.parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if failed == 0 {
			fmt.Fprintln(os.Stderr, "fanout: bare loop:", err)
		}
		failed++
	}
	for _, t := range b.targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(t.HostKey))
			if err != nil {
				fail(err)
				return
			}
			cfg := &ssh.ClientConfig{User: b.user, Auth: []ssh.AuthMethod{ssh.PublicKeys(b.signer)},
				HostKeyCallback: ssh.FixedHostKey(pinned), HostKeyAlgorithms: []string{pinned.Type()}, Timeout: 30 * time.Second}
			var c *ssh.Client
			for i := range b.steps {
				if c == nil || dialPerStep {
					if c != nil {
						c.Close()
					}
					if c, err = ssh.Dial("tcp", t.Addr, cfg); err != nil {
						fail(err)
						return
					}
				}
				s, err := c.NewSession()
				if err != nil {
					fail(err)
					break
				}
				out, err := s.Output("echo ok")
				s.Close()
				if err != nil || string(out) != "ok\n" {
					fail(fmt.Errorf("%s step %d: %q %v", t.Addr, i, out, err))
					break
				}
			}
			c.Close()
		})
	}
	wg.Wait()
	return time.Since(t0), failed
}

type server struct {
	cmd       *exec.Cmd
	pid       int
	url       string
	passwords map[string]string
}

// startServer starts `airlock demo` as bench/load does.
func startServer(tmp, binary string) (*server, error) {
	if binary == "" {
		binary = filepath.Join(tmp, "airlock")
		build := exec.Command("go", "build", "-o", binary, "./cmd/airlock")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
	}
	credFile := filepath.Join(tmp, "creds.json")
	cmd := exec.Command(binary, "demo", "--data", filepath.Join(tmp, "data"), "--listen", "127.0.0.1:0", "--credentials-file", credFile)
	logFile, err := os.Create(filepath.Join(tmp, "server.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = io.Discard, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, pid: cmd.Process.Pid, passwords: map[string]string{}}
	var c struct {
		URL   string `json:"url"`
		Users []struct {
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"users"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(credFile)
		if err == nil && json.Unmarshal(b, &c) == nil && c.URL != "" {
			break
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("the demo did not write its credentials file within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.url = strings.TrimRight(c.URL, "/")
	for _, u := range c.Users {
		s.passwords[u.Username] = u.Password
	}
	return s, nil
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

type client struct{ harness.Client }

// addNodes stores the client key as a secret and the nodes (staging, tag
// fleet), as an admin (bob in the demo) does.
func (c *client) addNodes(ctx context.Context, bob, user string, key []byte, targets []target) error {
	if err := c.Do(ctx, "PUT", "/api/v1/secrets/bench/fleet-key", bob, map[string]string{"value": string(key)}, nil, nil); err != nil {
		return err
	}
	errs := make([]error, len(targets))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			host, port, _ := net.SplitHostPort(t.Addr)
			p, _ := strconv.Atoi(port)
			name := fmt.Sprintf("fleet-%04d", i)
			errs[i] = c.Do(ctx, "PUT", "/api/v1/nodes/"+name, bob, map[string]any{"name": name, "address": host, "port": p, "user": user,
				"environment": "staging", "tags": []string{"fleet"}, "host_key": t.HostKey, "credential": "bench/fleet-key"}, nil, nil)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// install proposes the procedure as alice and approves it as bob.
func (c *client) install(ctx context.Context, alice, bob string, parallel, steps int) error {
	var src strings.Builder
	fmt.Fprintf(&src, "apiVersion: airlock/v1\nkind: Procedure\nname: bench-fanout\ntitle: Echo ok on the fleet (fan-out harness)\nowner: payments\nrisk: low\n"+
		"targets:\n  tags: [fleet]\n  parallel: %d\nsteps:\n", parallel)
	for i := range steps {
		fmt.Fprintf(&src, "  - name: echo-%d\n    exec: [\"echo\", \"ok\"]\n", i+1)
	}
	return c.Install(ctx, src.String(), alice, bob, "fan-out harness")
}

// runAndFollow requests a run and follows its output stream to the end
// event, as `airlock run --follow` does with a run that outlasts its
// wait; it checks that the run succeeded and every node said ok.
// allocated is the server's go_memstats_alloc_bytes_total, from its
// /metrics (0 if it cannot be read).
func (c *client) allocated(ctx context.Context) float64 {
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+"/metrics", nil)
	if err != nil {
		return 0
	}
	resp, err := c.HC.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_alloc_bytes_total "); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n
		}
	}
	return 0
}

func (c *client) runAndFollow(ctx context.Context, token string, nodes int) (time.Duration, error) {
	t0 := time.Now()
	var r struct {
		ID string `json:"id"`
	}
	if err := c.Do(ctx, "POST", "/api/v1/runs", token, map[string]any{"procedure": "bench-fanout", "environment": "staging"}, &r, nil); err != nil {
		return 0, err
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", c.Base+"/api/v1/runs/"+r.ID+"/output", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.HC.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("output of %s: %d", r.ID, resp.StatusCode)
	}
	said := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		switch event {
		case "output":
			var ch struct{ Node, Stream, Data string }
			if json.Unmarshal([]byte(data), &ch) == nil && ch.Stream == "stdout" && strings.Contains(ch.Data, "ok\n") {
				said[ch.Node] = true
			}
		case "end":
			d := time.Since(t0)
			var end struct {
				Status, Error string
			}
			_ = json.Unmarshal([]byte(data), &end)
			if end.Status != "succeeded" || len(said) != nodes {
				return 0, fmt.Errorf("run %s ended %s (%s); %d of %d nodes said ok", r.ID, end.Status, end.Error, len(said), nodes)
			}
			return d, nil
		}
	}
	return 0, fmt.Errorf("the output stream of %s ended without its end event: %v", r.ID, sc.Err())
}

// selfTicks is a process's own CPU time in clock ticks.
func selfTicks(pid int) int64 {
	t, _ := harness.CPUTicks(pid)
	return t
}

// clearPeak resets the process's peak RSS (VmHWM), so that the next
// reading is the peak since (Linux 4.0 and later).
func clearPeak(pid int) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil && !errors.Is(err, syscall.ENOENT) {
		fmt.Fprintln(os.Stderr, "fanout: reset the server's peak RSS:", err)
	}
}

// ownCPU is this process's CPU time so far (the fleet's and the
// clients'), at the kernel's tick (10 ms).
func ownCPU() time.Duration {
	return time.Duration(selfTicks(os.Getpid())) * 10 * time.Millisecond
}
