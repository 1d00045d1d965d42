package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/server"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestPostgresBackendsTerminatedDuringBurst terminates the server's
// PostgreSQL backends 20 times while 8 clients send 300 requests (reads
// and run requests): a connection the server lost — a failover, a
// restart, pg_terminate_backend — is retried inside the store, and no
// caller sees a 5xx for it.
func TestPostgresBackendsTerminatedDuringBurst(t *testing.T) {
	d := testenv.DemoServer(t, testenv.UseDriver(t, "postgres"))
	base := d.Serve(t)
	ctx := context.Background()
	tokens := map[string]string{}
	for _, name := range []string{"alice", "bob"} {
		u, err := d.Store.UserGetByUsername(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if tokens[name], _, err = d.Identity.IssueLoginToken(ctx, u, "burst"); err != nil {
			t.Fatal(err)
		}
	}
	dbURL, err := url.Parse(d.Config.Database.URL)
	if err != nil {
		t.Fatal(err)
	}
	app := dbURL.Query().Get("application_name")
	killer, err := pgx.Connect(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(ctx)

	const requests, clients, kills = 300, 8, 20
	client := &http.Client{Timeout: 30 * time.Second}
	var (
		next      atomic.Int64
		answered  = make(chan struct{}, requests)
		mu        sync.Mutex
		failures  []string
		wg        sync.WaitGroup
		requested atomic.Int64
	)
	do := func(i int64) (int, string, error) {
		var req *http.Request
		switch i % 3 {
		case 0:
			body, _ := json.Marshal(map[string]any{"procedure": "flush-cache", "environment": "staging", "params": map[string]string{"cache": "sessions"}})
			req, _ = http.NewRequest("POST", base+"/api/v1/runs", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("burst-%d", i))
			req.Header.Set("Authorization", "Bearer "+tokens["alice"])
			requested.Add(1)
		case 1:
			req, _ = http.NewRequest("GET", base+"/api/v1/runs?limit=20", nil)
			req.Header.Set("Authorization", "Bearer "+tokens["bob"])
		default:
			req, _ = http.NewRequest("GET", base+"/api/v1/procedures", nil)
			req.Header.Set("Authorization", "Bearer "+tokens["alice"])
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String(), nil
	}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= requests; i = next.Add(1) {
				code, body, err := do(i)
				if err != nil || code >= 500 {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("request %d: %d %v %s", i, code, err, body))
					mu.Unlock()
				}
				answered <- struct{}{}
			}
		}()
	}
	// Terminate every backend of the server after each 15th answer: the
	// kills are spread over the burst by its progress, not by a clock.
	terminated := 0
	deadline := time.After(5 * time.Minute)
	for k, got := 0, 0; got < requests; {
		select {
		case <-answered:
			got++
		case <-deadline:
			t.Fatalf("only %d of %d requests answered after 5 minutes", got, requests)
		}
		if k < kills && got%(requests/kills) == 0 {
			k++
			var n int
			if err := killer.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
				t.Fatal(err)
			}
			terminated += n
		}
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if terminated < kills {
		t.Fatalf("terminated %d backends in %d rounds; the test did not exercise lost connections", terminated, kills)
	}
	t.Logf("%d requests (%d run requests), %d backends terminated, %d write transactions retried", requests, requested.Load(), terminated, retries(d))
}

// retries is how many write transactions the store ran again.
func retries(d *testenv.Demo) int64 {
	if r, ok := d.Store.(interface{ Retries() int64 }); ok {
		return r.Retries()
	}
	return -1
}

// TestReadyzWhileTheDatabaseTakesNoWrites: a write the database refuses
// (query_only stands in for a full or read-only disk) answers 503 with
// the reason, /readyz answers 503 saying the database does not take
// writes, and both recover by themselves once it does.
func TestReadyzWhileTheDatabaseTakesNoWrites(t *testing.T) {
	d := testenv.DemoServer(t)
	base := d.Serve(t)
	ctx := context.Background()
	u, err := d.Store.UserGetByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := d.Identity.IssueLoginToken(ctx, u, "readyz")
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(method, path string) (int, string) {
		t.Helper()
		var body *bytes.Reader
		if method == "POST" {
			b, _ := json.Marshal(map[string]any{"procedure": "flush-cache", "environment": "production", "params": map[string]string{"cache": "sessions"}})
			body = bytes.NewReader(b)
		} else {
			body = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, base+path, body)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := get("GET", "/readyz"); code != 200 {
		t.Fatalf("readyz at start: %d %s", code, body)
	}
	w := d.Store.DBs()["sqlite_writer"] // one connection: the pragma stays on it
	if _, err := w.Exec(`PRAGMA query_only = 1`); err != nil {
		t.Fatal(err)
	}
	if code, body := get("POST", "/api/v1/runs"); code != 503 || !bytes.Contains([]byte(body), []byte("database is unavailable")) {
		t.Fatalf("a run request the database cannot store: %d %s, want 503 saying the database is unavailable", code, body)
	}
	if code, body := get("GET", "/readyz"); code != 503 || !bytes.Contains([]byte(body), []byte("does not take writes")) {
		t.Fatalf("readyz while writes fail: %d %s, want 503 saying the database does not take writes", code, body)
	}
	if _, err := w.Exec(`PRAGMA query_only = 0`); err != nil {
		t.Fatal(err)
	}
	if code, body := get("GET", "/readyz"); code != 200 {
		t.Fatalf("readyz once writes work again: %d %s", code, body)
	}
	if code, body := get("POST", "/api/v1/runs"); code != 201 {
		t.Fatalf("a run request once writes work again: %d %s", code, body)
	}
}

// quietProc runs briefly, prints nothing (so recording the outcome is
// the only write after the claim) and takes a lock.
const quietProc = `apiVersion: airlock/v1
kind: Procedure
name: quiet
title: Sleep a moment under a lock
owner: payments
risk: low
lock: quiet
steps:
  - name: sleep
    script: sleep 0.3
`

// TestRunOutcomeRecordedOnceWritesWorkAgain makes the database refuse
// writes while a run ends (query_only stands in for a full disk): the
// outcome is written once writes work again, instead of the run staying
// running for ever with its lock held.
func TestRunOutcomeRecordedOnceWritesWorkAgain(t *testing.T) {
	d := testenv.DemoServer(t)
	d.Serve(t)
	ctx := context.Background()
	alice, bob := principal(t, d, "alice"), principal(t, d, "bob")
	procs, err := procedure.Parse("quiet.yaml", []byte(quietProc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Review.Propose(ctx, alice, procs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Review.Review(ctx, bob, res.Version.ID, res.Version.Digest, "approve", "ok"); err != nil {
		t.Fatal(err)
	}
	request := func() *store.Run {
		r, err := d.Runs.Request(ctx, alice, run.RequestParams{Procedure: "quiet", Environment: "staging"})
		if err != nil || r.Status != store.RunQueued {
			t.Fatalf("request: %v %+v", err, r)
		}
		return r
	}
	waitStatus := func(id, want string) {
		t.Helper()
		deadline := time.After(2 * time.Minute)
		for {
			r, err := d.Store.RunGet(ctx, id)
			if err == nil && r.Status == want {
				return
			}
			select {
			case <-deadline:
				t.Fatalf("run %s to be %s: it is %s (%v)", id, want, r.Status, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	r1 := request()
	waitStatus(r1.ID, store.RunRunning)
	w := d.Store.DBs()["sqlite_writer"] // one connection: the pragma stays on it
	if _, err := w.Exec(`PRAGMA query_only = 1`); err != nil {
		t.Fatal(err)
	}
	// Ping fails once a write was refused: the outcome's, as nothing else
	// of this run writes.
	deadline := time.After(2 * time.Minute)
	for d.Store.Ping(ctx) == nil {
		select {
		case <-deadline:
			t.Fatal("no write was refused within 2 minutes: the run's outcome was never written")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, err := w.Exec(`PRAGMA query_only = 0`); err != nil {
		t.Fatal(err)
	}
	waitStatus(r1.ID, store.RunSucceeded)
	// Its lock is free again: a second run of the same lock runs.
	r2 := request()
	waitStatus(r2.ID, store.RunSucceeded)
	// Ended runs leave no working directory behind: only empty ones kept
	// for the next runs (.free-*), and .contain, which holds the
	// containment record, kept while the server runs steps in cgroups.
	testenv.Eventually(t, "the runs' working directories to be removed", func() bool {
		dir := filepath.Join(d.Config.Data, "runs")
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false
		}
		for _, e := range entries {
			if e.Name() == ".contain" {
				continue
			}
			if !strings.HasPrefix(e.Name(), ".free-") {
				return false
			}
			if left, err := os.ReadDir(filepath.Join(dir, e.Name())); err != nil || len(left) > 0 {
				return false
			}
		}
		return true
	})
}

// TestSingleNodeReapsItsOwnRunsAtStart: on SQLite no other process can
// be executing a run, so a run a previous process left running is
// finished at start, not after the heartbeat timeout (an hour here).
func TestSingleNodeReapsItsOwnRunsAtStart(t *testing.T) {
	d := testenv.DemoServer(t, func(c *config.Config) { c.Runs.HeartbeatTimeout = time.Hour })
	ctx := context.Background()
	p, err := d.Store.ProcedureGetByName(ctx, "flush-cache")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	left := &store.Run{ID: airlock.NewID(airlock.PrefixRun, now), ProcedureID: p.ID, ProcedureName: p.Name, VersionID: p.ActiveVersionID,
		Digest: "sha256:x", Environment: "staging", Params: []byte(`{}`), RequesterID: "usr_x", RequesterName: "alice",
		Status: store.RunRunning, Targets: []string{"staging-app-1"}, Binding: "b", CreatedAt: now, QueuedAt: now, StartedAt: now,
		HeartbeatAt: now, WorkerID: "wrk_previous_process", Attempt: 1}
	if err := d.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.RunInsert(ctx, left); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now, Type: "run.start",
			Subject: left.ID, ActorName: "test", Outcome: "success"})
	}); err != nil {
		t.Fatal(err)
	}
	d.Serve(t)
	testenv.Eventually(t, "the run a previous process left running to be reaped at start", func() bool {
		r, err := d.Store.RunGet(ctx, left.ID)
		return err == nil && r.Status == store.RunFailed && strings.Contains(r.Error, "worker lost")
	})
}

// TestKeysThatDoNotFitTheDataRefuseToStart: a replica or a restored
// server given another data directory's keys refuses to start, naming
// the key file and what it failed to open, before it writes anything.
func TestKeysThatDoNotFitTheDataRefuseToStart(t *testing.T) {
	d := testenv.DemoServer(t)
	ctx := context.Background()
	if _, err := d.AuditLog.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Secrets.Put(ctx, principal(t, d, "bob"), "payments/api-token", []byte("s3cret-value")); err != nil {
		t.Fatal(err)
	}
	cfg := d.Config
	d.Server.Close()
	start := func() error {
		s, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			s.Close()
		}
		return err
	}
	for _, c := range []struct {
		file, want string
	}{
		{"audit.key", "does not verify the newest stored checkpoint"},
		{"master.key", `cannot open the stored secret "payments/api-token"`},
	} {
		path := filepath.Join(cfg.Data, c.file)
		if err := os.Rename(path, path+".kept"); err != nil {
			t.Fatal(err)
		}
		// The start generates a new key where the old one was.
		err := start()
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("start with a new %s: %v; want a refusal naming %s and saying it %s", c.file, err, path, c.want)
		}
		if err := os.Rename(path+".kept", path); err != nil {
			t.Fatal(err)
		}
	}
	if err := start(); err != nil {
		t.Fatalf("start with the right keys: %v", err)
	}
}

// TestSecondAttemptContinuesTheOutput: an idempotent run whose worker was
// lost is started again; attempt 2's output follows attempt 1's instead
// of colliding with it, and the digest in the run's record is over
// exactly the output stored.
func TestSecondAttemptContinuesTheOutput(t *testing.T) {
	d := testenv.DemoServer(t, func(c *config.Config) { c.Runs.HeartbeatTimeout = time.Hour })
	ctx := context.Background()
	p, err := d.Store.ProcedureGetByName(ctx, "flush-cache")
	if err != nil {
		t.Fatal(err)
	}
	v, err := d.Store.ProcedureVersionGet(ctx, p.ActiveVersionID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	left := &store.Run{ID: airlock.NewID(airlock.PrefixRun, now), ProcedureID: p.ID, ProcedureName: p.Name, VersionID: v.ID,
		Digest: v.Digest, Environment: "staging", Params: []byte(`{"cache":"sessions"}`), RequesterID: "usr_x", RequesterName: "alice",
		Status: store.RunRunning, Targets: []string{"staging-app-1"}, Binding: "b", Idempotent: true, CreatedAt: now, QueuedAt: now,
		StartedAt: now, HeartbeatAt: now, WorkerID: "wrk_previous_process", Attempt: 1}
	if err := d.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.RunInsert(ctx, left); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now, Type: "run.start",
			Subject: left.ID, ActorName: "test", Outcome: "success"})
	}); err != nil {
		t.Fatal(err)
	}
	first := []*store.OutputChunk{
		{RunID: left.ID, Seq: 1, Node: "staging-app-1", Stream: store.StreamStdout, Data: []byte("attempt one, line one\n"), CreatedAt: now},
		{RunID: left.ID, Seq: 2, Node: "staging-app-1", Stream: store.StreamStdout, Data: []byte("attempt one, line two\n"), CreatedAt: now},
	}
	if err := d.Store.RunOutputAppend(ctx, store.Lease{RunID: left.ID, WorkerID: left.WorkerID, Attempt: 1}, first); err != nil {
		t.Fatal(err)
	}
	d.Serve(t)
	var r *store.Run
	testenv.Eventually(t, "the lost run to be started again and end", func() bool {
		r, err = d.Store.RunGet(ctx, left.ID)
		return err == nil && r.Status != store.RunRunning && r.Status != store.RunQueued
	})
	if r.Status != store.RunSucceeded || r.Attempt != 2 {
		t.Fatalf("run ended %s at attempt %d (%s), want succeeded at attempt 2", r.Status, r.Attempt, r.Error)
	}
	chunks, err := d.Store.RunOutputList(ctx, r.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	var all strings.Builder
	var total int64
	for i, c := range chunks {
		if c.Seq != int64(i+1) {
			t.Fatalf("chunk %d has seq %d: the attempts' numbering collided or skipped", i, c.Seq)
		}
		h.Write(c.Data)
		all.Write(c.Data)
		total += int64(len(c.Data))
	}
	out := all.String()
	if !strings.HasPrefix(out, "attempt one, line one\nattempt one, line two\n") || !strings.Contains(out, "attempt 2 of this run starts here") ||
		!strings.Contains(out, "flushing the sessions cache") {
		t.Fatalf("stored output does not hold both attempts in order:\n%s", out)
	}
	if want := "sha256:" + hex.EncodeToString(h.Sum(nil)); r.OutputDigest != want || r.OutputBytes != total {
		t.Fatalf("record: digest %s over %d bytes; stored output: %s over %d bytes", r.OutputDigest, r.OutputBytes, want, total)
	}
}
