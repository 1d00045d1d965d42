package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/server"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestConcurrentAccountsAndCatalog: decisions that were taken on reads
// made before the write transaction, raced against the change that
// invalidates them, on both drivers. Each case failed on the code before
// the re-reads inside the transactions (found by red-teaming issue 12).
func TestConcurrentAccountsAndCatalog(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			t.Run("ChangePasswordVersusDisable", func(t *testing.T) { testChangePasswordVsDisable(t, d) })
			t.Run("ParallelGuessesAreThrottled", func(t *testing.T) { testParallelGuesses(t, d) })
			t.Run("TwoTeamsProposeOneNewName", func(t *testing.T) { testProposeRace(t, d) })
			t.Run("LoginVersusDisable", func(t *testing.T) { testLoginVsDisable(t, d) })
			t.Run("RequestVersusRetire", func(t *testing.T) { testRequestVsRetire(t, d) })
		})
	}
}

// alice changes her password while bob (admin) disables her. Every serial
// order ends with alice disabled.
func testChangePasswordVsDisable(t *testing.T, d *testenv.Demo) {
	ctx := context.Background()
	alice, bob := principal(t, d, "alice"), principal(t, d, "bob")
	pw := d.Passwords["alice"]
	bad := 0
	for round := range 20 {
		enable(t, d, "alice")
		next := fmt.Sprintf("a-new-password-%02d-xyz", round)
		var errCP, errD error
		parallel(
			func() { errCP = d.Identity.ChangePassword(ctx, alice, pw, next) },
			func() { errD = d.Identity.Disable(ctx, bob, "alice") })
		if errCP == nil {
			pw = next
		}
		u, _ := d.Store.UserGetByUsername(ctx, "alice")
		if errD == nil && !u.Disabled {
			bad++
			t.Errorf("round %d: bob disabled alice (ok) and alice changed her password (%v), but alice ends enabled", round, errCP)
		}
	}
	d.Passwords["alice"] = pw
	enable(t, d, "alice")
}

// 40 wrong passwords for one account from one source at once: the
// throttle checks 3 (login.pair_failures) and makes the rest wait. The
// clock stands still meanwhile, so the wait never ends during the burst.
func testParallelGuesses(t *testing.T, d *testenv.Demo) {
	ctx := audit.WithMeta(context.Background(), audit.Meta{SourceAddr: "203.0.113.9"})
	at := time.Now()
	d.Identity.SetNow(func() time.Time { return at })
	defer d.Identity.SetNow(time.Now) // the demo server reads the wall clock
	// dave: a fresh account so other subtests are not throttled.
	bob := principal(t, d, "bob")
	if _, err := d.Identity.CreateUser(ctx, bob.Actor(), identityParams("dave")); err != nil {
		t.Fatal(err)
	}
	var checked, throttled atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := d.Identity.PasswordLogin(ctx, "dave", fmt.Sprintf("guess-%02d-wrong-password", i))
			switch airlock.ErrorKind(err) {
			case airlock.Unauthenticated:
				checked.Add(1)
			case airlock.TooManyRequests:
				throttled.Add(1)
			default:
				t.Errorf("login: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	t.Logf("password checked for %d guesses, throttled %d", checked.Load(), throttled.Load())
	if checked.Load() > 3 {
		t.Errorf("%d passwords were checked against the account in one burst from one source; login.pair_failures is 3", checked.Load())
	}
}

const raceProc = `apiVersion: airlock/v1
kind: Procedure
name: %s
title: race
owner: %s
risk: low
steps:
  - name: hello
    exec: ["echo", "%s"]
`

func parseProc(t *testing.T, name, owner, word string) *procedure.Source {
	ps, err := procedure.Parse(name+".yaml", []byte(fmt.Sprintf(raceProc, name, owner, word)))
	if err != nil || len(ps) != 1 {
		t.Fatalf("parse: %v", err)
	}
	return ps[0]
}

// alice (payments) and bob (ops) propose a new procedure of the same name
// at once, each owned by their own team. Policy lets a team propose only
// for procedures it owns: in any serial order the second is refused.
func testProposeRace(t *testing.T, d *testenv.Demo) {
	ctx := context.Background()
	alice, bob := principal(t, d, "alice"), principal(t, d, "bob")
	both := 0
	for i := range 30 {
		name := fmt.Sprintf("race-%d", i)
		var ra, rb any
		var ea, eb error
		parallel(
			func() { ra, ea = d.Review.Propose(ctx, alice, parseProc(t, name, "payments", "alice")) },
			func() { rb, eb = d.Review.Propose(ctx, bob, parseProc(t, name, "ops", "bob")) })
		_, _ = ra, rb
		if ea == nil && eb == nil {
			both++
			p, _ := d.Store.ProcedureGetByName(ctx, name)
			vs, _ := d.Store.ProcedureVersionList(ctx, store.ProcedureVersionListParams{ProcedureID: p.ID})
			desc := ""
			for _, v := range vs {
				desc += fmt.Sprintf(" v%d by %s %s;", v.Number, v.AuthorName, v.Status)
			}
			if both == 1 {
				t.Errorf("%s: both teams' proposals succeeded (procedure owner %q):%s", name, p.Owner, desc)
			}
		}
	}
}

// alice logs in while bob disables her: a session created after the
// disable committed survives it, and comes back to life on re-enable.
func testLoginVsDisable(t *testing.T, d *testenv.Demo) {
	ctx := context.Background()
	bob := principal(t, d, "bob")
	hits := 0
	for round := range 30 {
		enable(t, d, "alice")
		var secret string
		var errL, errD error
		parallel(
			func() {
				u, err := d.Identity.PasswordLogin(ctx, "alice", d.Passwords["alice"])
				if err != nil {
					errL = err
					return
				}
				secret, _, errL = d.Identity.NewSession(ctx, u, "password", "")
			},
			func() { errD = d.Identity.Disable(ctx, bob, "alice") })
		if errL != nil || errD != nil {
			continue
		}
		enable(t, d, "alice")
		if _, err := d.Identity.Authenticate(ctx, secret); err == nil {
			hits++
			if hits == 1 {
				t.Errorf("round %d: a session made during the disable is live again after re-enable (disable ends sessions; re-enabled users start afresh)", round)
			}
		}
	}
}

// alice requests a run while bob retires the procedure: a request that
// commits after the retire must be refused.
func testRequestVsRetire(t *testing.T, d *testenv.Demo) {
	ctx := context.Background()
	alice, bob := principal(t, d, "alice"), principal(t, d, "bob")
	bad := 0
	for i := range 15 {
		name := fmt.Sprintf("retire-race-%d", i)
		res, err := d.Review.Propose(ctx, alice, parseProc(t, name, "payments", "x"))
		if err != nil {
			t.Fatal(err)
		}
		rr, err := d.Review.Review(ctx, bob, res.Version.ID, res.Version.Digest, "approve", "ok")
		if err != nil || !rr.Activated {
			t.Fatalf("review: %v %+v", err, rr)
		}
		var r *store.Run
		var errR, errT error
		parallel(
			func() {
				r, errR = d.Runs.Request(ctx, alice, run.RequestParams{Procedure: name, Environment: "staging", Reason: "race"})
			},
			func() { _, errT = d.Review.Retire(ctx, bob, name, "race") })
		if errR != nil || errT != nil {
			continue
		}
		evs, _ := d.Store.AuditList(ctx, store.AuditListParams{After: -1, Type: "run.request", Subject: r.ID, Limit: 1})
		p, _ := d.Store.ProcedureGetByName(ctx, name)
		rets, _ := d.Store.AuditList(ctx, store.AuditListParams{After: -1, Type: "procedure.retire", Subject: p.ID, Limit: 1})
		if len(evs) == 1 && len(rets) == 1 && evs[0].Seq > rets[0].Seq {
			bad++
			if bad == 1 {
				t.Errorf("%s: run %s (%s) requested at seq %d, after the retire at seq %d", name, r.ID, r.Status, evs[0].Seq, rets[0].Seq)
			}
		}
	}
}

// TestTwoReplicasStartAtOnceOnAnEmptyDatabase: both bootstrap (the
// admin, the first policy) at the same moment; one creates them, the
// other finds them, and both start.
func TestTwoReplicasStartAtOnceOnAnEmptyDatabase(t *testing.T) {
	dbURL := testenv.PostgresSchema(t)
	var errs [2]error
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := config.Default()
			cfg.PublicURL = "http://127.0.0.1:1"
			cfg.Data = t.TempDir()
			cfg.Database.Driver, cfg.Database.URL = "postgres", dbURL
			s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			errs[i] = err
			if err == nil {
				t.Cleanup(func() { s.Close() })
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d failed to start: %v", i, err)
		}
	}
}

// enable re-enables a user the way it is done: bob proposes, carol
// approves. Nothing when the user is enabled.
func enable(t *testing.T, d *testenv.Demo, username string) {
	t.Helper()
	ctx := context.Background()
	if u, err := d.Store.UserGetByUsername(ctx, username); err != nil || !u.Disabled {
		return
	}
	c, err := d.Identity.ProposeUserChange(ctx, principal(t, d, "bob"), identity.UserChangeParams{Kind: store.UserChangeEnable, Username: username})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Identity.DecideUserChange(ctx, principal(t, d, "carol"), c.Change.ID, "approve", ""); err != nil {
		t.Fatal(err)
	}
}

func identityParams(name string) identity.CreateUserParams {
	return identity.CreateUserParams{Username: name, Password: "dave-correct-horse-battery", Groups: []string{"dev"}}
}
