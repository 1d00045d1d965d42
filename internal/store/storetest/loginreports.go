package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// testLoginReports: failed sign-ins are counted in their source's open
// report (and, when failures, for the throttle) outside Update; a report
// that counted attempts leaves only with an audit event, and gives back
// every attempt it counted.
func testLoginReports(t *testing.T, h Harness, t0 time.Time) {
	ctx := context.Background()
	s, _ := h.New(t)
	const addr, window = "192.0.2.50", time.Minute
	tally := func(name string, at time.Time, throttled bool) bool {
		t.Helper()
		ok, err := s.LoginFailureTally(ctx, store.LoginTally{Addr: addr, Username: name, At: at, OpenSince: at.Add(-window),
			Throttled: throttled, Failure: !throttled, PruneBefore: at.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if tally("alice", t0, false) {
		t.Fatal("counted in a report that was never opened")
	}
	restart := func(at time.Time) *store.LoginReport {
		t.Helper()
		var r *store.LoginReport
		if err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			if r, err = tx.LoginReportRestart(ctx, addr, at, at.Add(-window)); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, event("user.login_failed", ""))
		}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := restart(t0); r != nil {
		t.Fatalf("the first window gave back %+v", r)
	}
	for i := range 12 {
		if !tally(fmt.Sprintf("user%02d", i), t0.Add(time.Duration(i+1)*time.Second), i%4 == 3) {
			t.Fatalf("attempt %d not counted in the open report", i)
		}
	}
	if !tally("user00", t0.Add(30*time.Second), false) {
		t.Fatal("a repeated name not counted")
	}
	if st, err := s.LoginFailureStats(ctx, "user00", addr, t0); err != nil || st.Pair != 2 || st.Source != 10 {
		t.Fatalf("counted failures are not throttled: %+v %v", st, err)
	}
	if addrs, err := s.LoginReportsClosed(ctx, t0.Add(-time.Second)); err != nil || len(addrs) != 0 {
		t.Fatalf("closed reports while open: %v %v", addrs, err)
	}
	if addrs, err := s.LoginReportsClosed(ctx, t0); err != nil || len(addrs) != 1 || addrs[0] != addr {
		t.Fatalf("closed reports: %v %v", addrs, err)
	}
	// Taking it without an event would lose what it counted.
	if err := s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.LoginReportTake(ctx, addr, t0.Add(time.Minute))
		return err
	}); err == nil {
		t.Fatal("a report with attempts was taken without an audit event")
	}
	// Past the window, the next attempt is not counted: the caller
	// restarts the report and gets the closed one back.
	if tally("alice", t0.Add(time.Minute), false) {
		t.Fatal("counted in a closed window")
	}
	r := restart(t0.Add(time.Minute))
	if r == nil {
		t.Fatal("restarting gave back nothing")
	}
	got := fmt.Sprintf("%d failed %d throttled %s..%s names %s more %t", r.Failed, r.Throttled,
		r.FirstAt.Sub(t0), r.LastAt.Sub(t0), strings.Join(r.Usernames, ","), r.MoreNames)
	want := "10 failed 3 throttled 1s..30s names user00,user01,user02,user03,user04,user05,user06,user07,user08,user09 more true"
	if got != want || !r.WindowStart.Equal(t0) {
		t.Fatalf("report %s (window %s), want %s (window %s)", got, r.WindowStart, want, t0)
	}
	if !tally("bob", t0.Add(70*time.Second), false) {
		t.Fatal("not counted in the new window")
	}
	// The sweep's take: nothing while open, then the report with its one
	// attempt; an empty report goes without an event.
	take := func(openSince time.Time) *store.LoginReport {
		t.Helper()
		var r *store.LoginReport
		if err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			if r, err = tx.LoginReportTake(ctx, addr, openSince); err != nil || r == nil {
				return err
			}
			return tx.AuditAppend(ctx, event("user.login_failures", ""))
		}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := take(t0.Add(59 * time.Second)); r != nil {
		t.Fatalf("took an open report: %+v", r)
	}
	if r := take(t0.Add(2 * time.Minute)); r == nil || r.Failed != 1 || len(r.Usernames) != 1 || r.Usernames[0] != "bob" || r.MoreNames {
		t.Fatalf("took %+v", r)
	}
	restart(t0.Add(3 * time.Minute))
	if r := take(t0.Add(4 * time.Minute)); r != nil {
		t.Fatalf("an empty report gave back %+v", r)
	}
	if addrs, err := s.LoginReportsClosed(ctx, t0.Add(time.Hour)); err != nil || len(addrs) != 0 {
		t.Fatalf("reports left: %v %v", addrs, err)
	}
}
