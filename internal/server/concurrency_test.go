package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// The concurrency suite: two people deciding on one object at the same
// moment, through the real services, on both drivers. Each case checks
// that the outcome is one a serial order of the two calls would give,
// and that no deadlock or serialization failure reaches a caller.
func TestConcurrentDecisions(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			t.Run("ApproveVersusCancel", func(t *testing.T) { testApproveVersusCancel(t, d) })
			t.Run("QuorumFromTwoReviewsAtOnce", func(t *testing.T) { testQuorumAtOnce(t, d) })
			t.Run("TwoAdminsTwoPolicies", func(t *testing.T) { testTwoAdminsTwoPolicies(t, d) })
			t.Run("PolicyApprovalUnderWriteLoad", func(t *testing.T) { testPolicyApprovalUnderLoad(t, d) })
		})
	}
}

// principal is the demo user as the services see them once signed in.
func principal(t *testing.T, d *testenv.Demo, name string) *identity.Principal {
	t.Helper()
	ctx := context.Background()
	u, err := d.Store.UserGetByUsername(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := d.Store.GroupListForUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	p := &identity.Principal{UserID: u.ID, Username: u.Username, Via: "token"}
	for _, g := range gs {
		p.Groups = append(p.Groups, g.Name)
	}
	return p
}

// parallel runs a and b at once, as two callers would.
func parallel(a, b func()) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, f := range []func(){a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); <-start; f() }()
	}
	close(start)
	wg.Wait()
}

// testApproveVersusCancel: bob approves alice's pending production run
// while alice cancels it, 200 times. Either order ends canceled; when
// both calls succeed, the approval came first and the log says so.
func testApproveVersusCancel(t *testing.T, d *testenv.Demo) {
	ctx := context.Background()
	alice, bob := principal(t, d, "alice"), principal(t, d, "bob")
	const pairs = 200
	runs := make([]*store.Run, pairs)
	for i := range runs {
		r, err := d.Runs.Request(ctx, alice, run.RequestParams{Procedure: "flush-cache", Environment: "production",
			Params: map[string]any{"cache": "sessions"}, Reason: fmt.Sprintf("pair %d", i)})
		if err != nil || r.Status != store.RunPending {
			t.Fatalf("request %d: %v %+v", i, err, r)
		}
		runs[i] = r
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, r := range runs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var approveErr, cancelErr error
			parallel(
				func() { _, approveErr = d.Runs.Decide(ctx, bob, r.ID, "approve", r.Binding, "ok") },
				func() { _, cancelErr = d.Runs.Cancel(ctx, alice, r.ID) })
			if cancelErr != nil {
				t.Errorf("pair %d: cancel failed: %v", i, cancelErr)
			}
			if approveErr != nil && (airlock.ErrorKind(approveErr) != airlock.Conflict || !strings.Contains(approveErr.Error(), "is canceled")) {
				t.Errorf("pair %d: approve failed other than by losing to the cancel: %v", i, approveErr)
			}
			got, err := d.Store.RunGet(ctx, r.ID)
			if err != nil || got.Status != store.RunCanceled {
				t.Errorf("pair %d: run ends %s (%v); every serial order of approve and cancel ends canceled", i, got.Status, err)
				return
			}
			events, err := d.Store.AuditList(ctx, store.AuditListParams{After: -1, Subject: r.ID, Limit: 100})
			if err != nil {
				t.Error(err)
				return
			}
			var types []string
			for _, e := range events {
				if e.Type != "run.request" {
					types = append(types, e.Type)
				}
			}
			want := "run.cancel"
			if approveErr == nil {
				want = "run.approve run.queue run.cancel"
			}
			if got := strings.Join(types, " "); got != want {
				t.Errorf("pair %d: the log reads %q, want %q", i, got, want)
			}
		}()
	}
	wg.Wait()
}

// mediumProc is a medium-risk procedure: ops and security must both
// approve it.
const mediumProc = `apiVersion: airlock/v1
kind: Procedure
name: concurrent-%d
title: A procedure reviewed by two people at once
owner: payments
risk: medium
steps:
  - name: hello
    exec: ["echo", "hello"]
`

// testQuorumAtOnce: ops (bob) and security (carol) approve the same
// medium-risk version at the same moment, for 50 versions: every one
// ends approved, none stranded proposed with both approvals stored.
func testQuorumAtOnce(t *testing.T, d *testenv.Demo) {
	ctx := context.Background()
	alice, bob, carol := principal(t, d, "alice"), principal(t, d, "bob"), principal(t, d, "carol")
	const versions = 50
	var wg sync.WaitGroup
	for i := range versions {
		procs, err := procedure.Parse(fmt.Sprintf("concurrent-%d.yaml", i), []byte(fmt.Sprintf(mediumProc, i)))
		if err != nil || len(procs) != 1 {
			t.Fatalf("parse: %v", err)
		}
		res, err := d.Review.Propose(ctx, alice, procs[0])
		if err != nil {
			t.Fatalf("propose %d: %v", i, err)
		}
		v := res.Version
		wg.Add(1)
		go func() {
			defer wg.Done()
			var errB, errC error
			parallel(
				func() { _, errB = d.Review.Review(ctx, bob, v.ID, v.Digest, "approve", "ops ok") },
				func() { _, errC = d.Review.Review(ctx, carol, v.ID, v.Digest, "approve", "security ok") })
			if errB != nil || errC != nil {
				t.Errorf("version %d: reviews failed: ops %v, security %v", i, errB, errC)
				return
			}
			got, err := d.Store.ProcedureVersionGet(ctx, v.ID)
			if err != nil || got.Status != store.VersionApproved {
				t.Errorf("version %d is %s (%v) with both approvals given, want approved", i, got.Status, err)
			}
		}()
	}
	wg.Wait()
}

// testTwoAdminsTwoPolicies: bob and carol each propose a policy change at
// once, then each approves the other's at once, 20 times. A newer
// proposal withdraws the pending one, so exactly one approval can
// succeed, and exactly one version is active after each round.
func testTwoAdminsTwoPolicies(t *testing.T, d *testenv.Demo) {
	ctx := context.Background()
	bob, carol := principal(t, d, "bob"), principal(t, d, "carol")
	for round := range 20 {
		var vb, vc *store.PolicyVersion
		var errB, errC error
		parallel(
			func() {
				vb, errB = d.Authz.ProposePolicy(ctx, bob, demo.Policy+fmt.Sprintf("\n// bob, round %d\n", round), "bob's change")
			},
			func() {
				vc, errC = d.Authz.ProposePolicy(ctx, carol, demo.Policy+fmt.Sprintf("\n// carol, round %d\n", round), "carol's change")
			})
		if errB != nil || errC != nil {
			t.Fatalf("round %d: proposals: %v, %v", round, errB, errC)
		}
		var okB, okC error
		parallel(
			func() { _, okB = d.Authz.DecidePolicy(ctx, carol, vb.ID, "approve", vb.Digest, "") },
			func() { _, okC = d.Authz.DecidePolicy(ctx, bob, vc.ID, "approve", vc.Digest, "") })
		if (okB == nil) == (okC == nil) {
			t.Fatalf("round %d: approvals of two proposals made at once: %v and %v; want exactly one to succeed (the newer withdrew the older)", round, okB, okC)
		}
		for _, err := range []error{okB, okC} {
			if err != nil && airlock.ErrorKind(err) != airlock.Conflict {
				t.Fatalf("round %d: the losing approval failed with %v, want a conflict", round, err)
			}
		}
		active, err := d.Store.PolicyVersionList(ctx, store.PolicyActive)
		if err != nil || len(active) != 1 {
			t.Fatalf("round %d: %d active policy versions (%v), want 1", round, len(active), err)
		}
	}
}

// testPolicyApprovalUnderLoad approves policy versions while 40 callers
// request runs: approving validates the policy against the catalog
// inside its transaction, and must read through that transaction — a
// read through the pool would wait for a connection held by the writers
// queued behind it (all of them, on PostgreSQL), and never get one.
func testPolicyApprovalUnderLoad(t *testing.T, d *testenv.Demo) {
	ctx := context.Background()
	alice, bob, carol := principal(t, d, "alice"), principal(t, d, "bob"), principal(t, d, "carol")
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; !stop.Load(); j++ {
				c, cancel := context.WithTimeout(ctx, time.Minute)
				d.Runs.Request(c, alice, run.RequestParams{Procedure: "flush-cache", Environment: "production",
					Params: map[string]any{"cache": "sessions"}, Reason: fmt.Sprintf("load %d/%d", i, j)})
				cancel()
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	for round := range 5 {
		v, err := d.Authz.ProposePolicy(ctx, bob, demo.Policy+fmt.Sprintf("\n// under load, round %d\n", round), "load")
		if err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithTimeout(ctx, time.Minute)
		_, err = d.Authz.DecidePolicy(c, carol, v.ID, "approve", v.Digest, "")
		cancel()
		if err != nil {
			t.Fatalf("round %d: approving a policy while others write: %v (a hang ends at the one-minute deadline)", round, err)
		}
	}
}
