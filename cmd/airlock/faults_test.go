package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/server"
	"github.com/airlockhq/airlock/internal/testenv"
)

// The fault-injection suite: real servers (the built binary), real
// clients over HTTP, real faults — SIGKILL of the server, PostgreSQL
// backends terminated, a full disk — and, after each, the invariants a
// user is promised (docs/runs.md, "Under faults"):
//
//   - every acknowledged request exists;
//   - every run a dead process was executing is final, or started again
//     as a later attempt, within the heartbeat timeout and 10 s of the
//     restart, and every run ends;
//   - no step of a procedure that is not idempotent ran twice;
//   - no process any step started is alive afterwards;
//   - every final run's stored output hashes to the digest it records;
//   - no final run holds a lock;
//   - `airlock audit verify` passes.

// faultProc is the drill's procedure: it marks each execution with the
// run's ID, leaves a background process behind (a probe the test looks
// for afterwards), and takes a lock of its slot, so 8 run at a time.
const faultProc = `apiVersion: airlock/v1
kind: Procedure
name: %s
title: Fault drill
owner: payments
risk: low
idempotent: %v
lock: "drill-{{ .params.slot }}"
parameters:
  - {name: dir, type: string}
  - {name: slot, type: string}
steps:
  - name: mark
    script: |
      echo "$AIRLOCK_RUN_ID" >> "$AIRLOCK_PARAM_DIR/marks-$AIRLOCK_PROCEDURE"
      sleep %s >/dev/null 2>&1 &
      echo "working on $AIRLOCK_RUN_ID"
      sleep 0.05
  - name: finish
    exec: ["echo", "done"]
`

const hbTimeout = 2 * time.Second

// faultRig is an Airlock deployment under test: one server (SQLite) or
// replicas (PostgreSQL) on one data directory, restarted after kills.
type faultRig struct {
	t     *testing.T
	bin   string
	data  string
	dbURL string // PostgreSQL; empty for SQLite
	env   []string
	marks string // the drill's mark files
	probe string // the background process's argument: "sleep <probe>"

	mu      sync.Mutex
	servers []*demoProcess
	token   string // bob's
	acked   map[string]string
}

func newFaultRig(t *testing.T, driver, data string) *faultRig {
	t.Helper()
	r := &faultRig{t: t, bin: buildBinary(t), data: data, marks: t.TempDir(), acked: map[string]string{},
		// A duration no other process on the machine sleeps.
		probe: fmt.Sprintf("3%02d.%06d", rand.IntN(100), rand.IntN(1000000)),
		env: []string{"AIRLOCK_RUNS_HEARTBEAT_INTERVAL=200ms", "AIRLOCK_RUNS_HEARTBEAT_TIMEOUT=" + hbTimeout.String(),
			"AIRLOCK_AUDIT_CHECKPOINT_EVENTS=200", "AIRLOCK_AUDIT_CHECKPOINT_INTERVAL=1s"}}
	if r.data == "" {
		r.data = t.TempDir()
	}
	if driver == "postgres" {
		r.dbURL = testenv.PostgresSchema(t)
	}
	first := r.start()
	pw := map[string]string{}
	for _, u := range first.creds.Users {
		pw[u.Username] = u.Password
	}
	alice := (&apiClient{t: t, url: first.creds.URL}).as("alice", pw)
	bob := (&apiClient{t: t, url: first.creds.URL}).as("bob", pw)
	r.token = bob.token
	for _, p := range []struct {
		name string
		idem bool
	}{{"drill-once", false}, {"drill-again", true}} {
		code, out := alice.do("POST", "/api/v1/versions", map[string]string{"source": fmt.Sprintf(faultProc, p.name, p.idem, r.probe)})
		if code != 201 {
			t.Fatalf("propose %s: %d %v", p.name, code, out)
		}
		v := out["version"].(map[string]any)
		if code, out := bob.do("POST", "/api/v1/versions/"+v["id"].(string)+"/reviews", map[string]string{"decision": "approve", "digest": v["digest"].(string)}); code != 201 {
			t.Fatalf("approve %s: %d %v", p.name, code, out)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, s := range r.all() {
				t.Logf("server %d log, requests left out (tail):\n%s", i, logTail(s.stderr.String(), 6000))
			}
		}
		// What a failed run of the drill left behind goes, so one failure
		// does not leak processes into the next test.
		for _, pid := range probes(r.probe) {
			var n int
			fmt.Sscan(pid, &n)
			_ = syscall.Kill(n, syscall.SIGKILL)
		}
	})
	return r
}

// logTail is the end of a server's log without its request lines.
func logTail(log string, n int) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `msg="http request"`) {
			keep = append(keep, l)
		}
	}
	s := strings.Join(keep, "\n")
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// start starts a server (another replica, on PostgreSQL) and returns it
// once it serves.
func (r *faultRig) start() *demoProcess {
	r.t.Helper()
	var args []string
	if r.dbURL != "" {
		args = []string{"--database-url", r.dbURL}
	}
	p := startDemoArgs(r.t, r.bin, r.data, args, r.env...)
	r.mu.Lock()
	r.servers = append(r.servers, p)
	r.mu.Unlock()
	return p
}

func (r *faultRig) all() []*demoProcess {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*demoProcess(nil), r.servers...)
}

// crash SIGKILLs the server process alone — not its process group: what
// it started must be dealt with by Airlock, not by the test — and waits
// until it is reaped.
func (r *faultRig) crash(p *demoProcess) {
	r.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatalf("kill -9 %d: %v", p.cmd.Process.Pid, err)
	}
	p.waitExit(r.t, "SIGKILL")
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, s := range r.servers {
		if s == p {
			r.servers = append(r.servers[:i], r.servers[i+1:]...)
			break
		}
	}
}

var faultClient = &http.Client{Timeout: 20 * time.Second}

// call sends one API request to any live server; err is a transport
// failure (the server is down or restarting).
func (r *faultRig) call(method, path string, body any) (int, []byte, error) {
	servers := r.all()
	if len(servers) == 0 {
		return 0, nil, errors.New("no server is up")
	}
	s := servers[rand.IntN(len(servers))]
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.creds.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.token)
	if key, ok := body.(idemBody); ok {
		req.Header.Set("Idempotency-Key", key.key)
	}
	resp, err := faultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// get reads path, retrying while no server answers, for up to a minute.
func (r *faultRig) get(path string, v any) int {
	r.t.Helper()
	deadline := time.After(time.Minute)
	for {
		code, b, err := r.call("GET", path, nil)
		if err == nil && code < 500 {
			if v != nil {
				if err := json.Unmarshal(b, v); err != nil {
					r.t.Fatalf("GET %s: %v: %s", path, err, b)
				}
			}
			return code
		}
		select {
		case <-deadline:
			r.t.Fatalf("GET %s: no answer below 500 within a minute: %d %v %s", path, code, err, b)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type idemBody struct {
	key  string
	body map[string]any
}

func (b idemBody) MarshalJSON() ([]byte, error) { return json.Marshal(b.body) }

// burst has clients request n runs between them, alternating the two
// drill procedures, each request retried (with its idempotency key) until
// a server acknowledges it, and each client following its run until it
// ends before it requests the next — as people do. inject is called, in
// a goroutine of its own, with each acknowledged count in turn, and may
// break things meanwhile; burst returns once it has seen every count.
func (r *faultRig) burst(n, clients int, inject func(acked int)) {
	r.t.Helper()
	var next, acked atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	acks := make(chan int, n)
	injected := make(chan struct{})
	go func() {
		defer close(injected)
		for a := range acks {
			inject(a)
		}
	}()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) || failed.Load() != nil {
					return
				}
				proc := "drill-once"
				if i%2 == 0 {
					proc = "drill-again"
				}
				body := idemBody{key: fmt.Sprintf("drill-%d", i), body: map[string]any{"procedure": proc, "environment": "staging",
					"params": map[string]string{"dir": r.marks, "slot": fmt.Sprint(i % 8)}, "reason": "fault drill"}}
				deadline := time.Now().Add(2 * time.Minute)
				for {
					code, b, err := r.call("POST", "/api/v1/runs", body)
					if err == nil && (code == 201 || code == 200) {
						var run struct{ ID string }
						if json.Unmarshal(b, &run) != nil || run.ID == "" {
							failed.Store(fmt.Sprintf("request %d acknowledged without a run: %s", i, b))
							return
						}
						r.mu.Lock()
						r.acked[run.ID] = proc
						r.mu.Unlock()
						acks <- int(acked.Add(1))
						if err := r.follow(run.ID); err != nil {
							failed.Store(err.Error())
							return
						}
						break
					}
					if err == nil && code < 500 {
						failed.Store(fmt.Sprintf("request %d refused: %d %s", i, code, b))
						return
					}
					if time.Now().After(deadline) {
						failed.Store(fmt.Sprintf("request %d not acknowledged within 2 minutes: %d %v %s", i, code, err, b))
						return
					}
					<-time.After(20 * time.Millisecond) // the server is down, restarting or full: try again
				}
			}
		}()
	}
	wg.Wait()
	close(acks)
	<-injected
	if f := failed.Load(); f != nil {
		r.t.Fatal(f)
	}
}

// follow polls a run until it ends, through server restarts, for up to
// 2 minutes.
func (r *faultRig) follow(id string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, b, err := r.call("GET", "/api/v1/runs/"+id, nil)
		var v runView
		if err == nil && code == 200 && json.Unmarshal(b, &v) == nil && finalStatus(v.Status) {
			return nil
		}
		if err == nil && code != 200 && code < 500 {
			return fmt.Errorf("follow run %s: %d %s", id, code, b)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("run %s did not end within 2 minutes: %d %v %s", id, code, err, b)
		}
		<-time.After(50 * time.Millisecond) // polling the run, under the deadline above
	}
}

type runView struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	Attempt      int    `json:"attempt"`
	Error        string `json:"error"`
	OutputBytes  int64  `json:"output_bytes"`
	OutputDigest string `json:"output_digest"`
}

func finalStatus(s string) bool {
	switch s {
	case "succeeded", "failed", "canceled", "timed_out", "denied", "expired":
		return true
	}
	return false
}

// running lists the runs stored as running, with their attempts.
func (r *faultRig) running() map[string]int {
	var list struct{ Items []runView }
	r.get("/api/v1/runs?status=running&limit=1000", &list)
	out := map[string]int{}
	for _, v := range list.Items {
		out[v.ID] = v.Attempt
	}
	return out
}

// orphansResolved waits, for at most the heartbeat timeout and 10 s, until
// every run the dead process was executing (running at the restart) is
// final or started again as a later attempt.
func (r *faultRig) orphansResolved(orphans map[string]int) {
	r.t.Helper()
	pending := func() []string {
		var left []string
		for id, attempt := range orphans {
			var v runView
			r.get("/api/v1/runs/"+id, &v)
			if !finalStatus(v.Status) && v.Attempt <= attempt && v.Status == "running" {
				left = append(left, id+" (attempt "+fmt.Sprint(v.Attempt)+")")
			}
		}
		return left
	}
	var left []string
	testenv.Within(r.t, hbTimeout+10*time.Second, "the runs a killed server was executing to be final or started again", func() bool {
		left = pending()
		return len(left) == 0
	})
}

// check waits for every acknowledged run to end, then checks the
// invariants.
func (r *faultRig) check() {
	r.t.Helper()
	r.mu.Lock()
	acked := make(map[string]string, len(r.acked))
	for id, p := range r.acked {
		acked[id] = p
	}
	r.mu.Unlock()
	runs := map[string]runView{}
	deadline := time.Now().Add(3 * time.Minute)
	for id := range acked {
		for {
			var v runView
			if code := r.get("/api/v1/runs/"+id, &v); code != 200 {
				r.t.Fatalf("acknowledged run %s: %d", id, code)
			}
			if finalStatus(v.Status) {
				runs[id] = v
				break
			}
			if time.Now().After(deadline) {
				r.t.Fatalf("acknowledged run %s is still %s (attempt %d) 3 minutes on", id, v.Status, v.Attempt)
			}
			<-time.After(50 * time.Millisecond) // polling a run to end, under the 3-minute deadline
		}
	}
	// No step of a procedure that is not idempotent ran twice; every run
	// that succeeded ran.
	for _, proc := range []string{"drill-once", "drill-again"} {
		b, _ := os.ReadFile(filepath.Join(r.marks, "marks-"+proc))
		count := map[string]int{}
		for _, id := range strings.Fields(string(b)) {
			count[id]++
		}
		for id, p := range acked {
			switch {
			case p != proc:
			case proc == "drill-once" && count[id] > 1:
				r.t.Errorf("run %s of a procedure that is not idempotent executed %d times", id, count[id])
			case runs[id].Status == "succeeded" && count[id] == 0:
				r.t.Errorf("run %s succeeded without executing", id)
			}
		}
	}
	// No process a step started is alive.
	testenv.Eventually(r.t, "no process started by a step ("+r.probe+") to be alive", func() bool {
		return len(probes(r.probe)) == 0
	})
	// Every final run's stored output hashes to its recorded digest.
	var failedRuns int
	for id, v := range runs {
		if v.Status != "succeeded" {
			failedRuns++
		}
		if v.OutputDigest == "" {
			continue
		}
		h := sha256.New()
		var n int64
		for after := 0; ; {
			var page struct {
				Chunks []struct {
					Seq  int    `json:"seq"`
					Data string `json:"data"`
				}
				Next int `json:"next"`
			}
			r.get(fmt.Sprintf("/api/v1/runs/%s/output?after=%d&limit=1000", id, after), &page)
			if len(page.Chunks) == 0 {
				break
			}
			for _, c := range page.Chunks {
				h.Write([]byte(c.Data))
				n += int64(len(c.Data))
				after = c.Seq
			}
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != v.OutputDigest || n != v.OutputBytes {
			r.t.Errorf("run %s (%s): stored output is %d bytes %s; the run records %d bytes %s", id, v.Status, n, got, v.OutputBytes, v.OutputDigest)
		}
	}
	r.t.Logf("%d runs acknowledged and final, %d of them not succeeded", len(runs), failedRuns)
	r.checkStore()
	r.auditVerify()
}

// probes lists the processes running `sleep <probe>`.
func probes(probe string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Equal(b, []byte("sleep\x00"+probe+"\x00")) {
			found = append(found, filepath.Base(filepath.Dir(f)))
		}
	}
	return found
}

// checkStore reads the database directly: no final run holds a lock,
// and no run is left running by nobody.
func (r *faultRig) checkStore() {
	r.t.Helper()
	cfg := config.Default()
	cfg.Data = r.data
	if r.dbURL != "" {
		cfg.Database.Driver, cfg.Database.URL = "postgres", r.dbURL
	}
	ctx := context.Background()
	st, err := server.OpenStoreReadOnly(ctx, cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	defer st.Close()
	for name, db := range st.DBs() {
		var held int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM run_locks l JOIN runs r ON r.id = l.run_id WHERE r.status <> 'running'`).Scan(&held); err != nil {
			r.t.Fatalf("%s: %v", name, err)
		}
		if held != 0 {
			r.t.Errorf("%d locks are held by runs that are not running", held)
		}
		break
	}
}

// auditVerify runs `airlock audit verify` on the deployment's database.
func (r *faultRig) auditVerify() {
	r.t.Helper()
	cmd := exec.Command(r.bin, "audit", "verify", "--data", r.data)
	cmd.Env = append(os.Environ(), "AIRLOCK_CONFIG_DIR="+r.t.TempDir())
	if r.dbURL != "" {
		cmd.Env = append(cmd.Env, "AIRLOCK_DATABASE_DRIVER=postgres", "AIRLOCK_DATABASE_URL="+r.dbURL)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		r.t.Errorf("audit verify: %v\n%s", err, out)
	}
}

// TestKillNineDuringBurst kills the server with SIGKILL at five random
// moments of a 500-run burst from 8 clients, restarting it each time.
func TestKillNineDuringBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it")
	}
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			r := newFaultRig(t, driver, "")
			const runs, kills = 500, 5
			// Five moments, at random, in the first 90% of the burst.
			var at []int
			for i := range kills {
				lo := i * runs * 9 / 10 / kills
				at = append(at, lo+1+rand.IntN(runs*9/10/kills))
			}
			t.Logf("kill -9 after %v acknowledged requests", at)
			done := 0
			r.burst(runs, 8, func(acked int) {
				if done >= kills || acked < at[done] {
					return
				}
				r.crash(r.all()[0])
				r.start()
				r.orphansResolved(r.running())
				done++
			})
			if done != kills {
				t.Fatalf("%d of %d kills happened", done, kills)
			}
			r.check()
		})
	}
}

// TestPostgresTerminationsDuringBurst terminates the server's PostgreSQL
// backends 20 times in 10 s while 8 clients request 300 runs.
func TestPostgresTerminationsDuringBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	r := newFaultRig(t, "postgres", "")
	u, err := url.Parse(r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	app := u.Query().Get("application_name")
	ctx := context.Background()
	killer, err := pgx.Connect(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(ctx)
	var once sync.Once
	var terminated atomic.Int64
	stormDone := make(chan struct{})
	r.burst(300, 8, func(acked int) {
		if acked < 40 {
			return
		}
		once.Do(func() {
			go func() {
				defer close(stormDone)
				for range 20 {
					var n int64
					if err := killer.QueryRow(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
						t.Errorf("terminate backends: %v", err)
						return
					}
					terminated.Add(n)
					<-time.After(500 * time.Millisecond) // 20 terminations spread over 10 s, as the drill prescribes
				}
			}()
		})
	})
	select {
	case <-stormDone:
	case <-time.After(time.Minute):
		t.Fatal("the 20 terminations did not end within a minute")
	}
	if terminated.Load() == 0 {
		t.Fatal("no backend of the server was terminated: the drill tested nothing")
	}
	// The database is whole again: what runs now ends, or is running for
	// real, within the bound.
	r.orphansResolved(r.running())
	t.Logf("%d backends terminated", terminated.Load())
	r.check()
}

// TestDiskFullThenFreed fills the file system of a SQLite server's data
// directory (a tmpfs of its own) during a burst, until the server says
// its storage is full, then frees it.
func TestDiskFullThenFreed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	data := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m", "airlock-test", data).CombinedOutput(); err != nil {
		testenv.Missing(t, fmt.Sprintf("mounting a tmpfs to fill needs root: %v %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", data, err, out)
		}
	})
	r := newFaultRig(t, "sqlite", data)
	filler := filepath.Join(data, "filler")
	var once sync.Once
	freed := make(chan struct{})
	r.burst(300, 8, func(acked int) {
		if acked < 60 {
			return
		}
		once.Do(func() {
			go func() {
				defer close(freed)
				fill(t, filler)
				// Until the server noticed (a write refused), then free.
				testenv.Eventually(t, "the server to report its storage full on /readyz", func() bool {
					code, b, err := r.call("GET", "/readyz", nil)
					return err == nil && code == 503 && strings.Contains(string(b), "storage full")
				})
				if err := os.Remove(filler); err != nil {
					t.Error(err)
				}
				testenv.Eventually(t, "the server to be ready again once space was freed", func() bool {
					code, _, err := r.call("GET", "/readyz", nil)
					return err == nil && code == 200
				})
				r.orphansResolved(r.running())
			}()
		})
	})
	select {
	case <-freed:
	case <-time.After(2 * time.Minute):
		t.Fatal("the disk was not filled and freed within 2 minutes")
	}
	r.check()
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	block := make([]byte, 1<<20)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("fill %s: %v", path, err)
			}
			return
		}
	}
}

// TestReplicaKilledMidRun runs two replicas on PostgreSQL and kills one
// with SIGKILL while runs execute on both: the survivor finishes or
// restarts the dead one's runs within the heartbeat timeout and 10 s;
// the dead one restarts later.
func TestReplicaKilledMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	r := newFaultRig(t, "postgres", "")
	r.start()
	var once sync.Once
	var restarted atomic.Bool
	r.burst(300, 8, func(acked int) {
		if acked < 100 {
			return
		}
		once.Do(func() {
			victim := r.all()[0]
			before := r.running()
			r.crash(victim)
			// Every run that was running then, on either replica, is
			// final or running again (the survivor's, or a new attempt)
			// within the bound; then the dead replica comes back.
			r.orphansResolved(before)
			r.start()
			restarted.Store(true)
		})
	})
	if !restarted.Load() {
		t.Fatal("the replica was not killed and restarted during the burst")
	}
	r.check()
}
