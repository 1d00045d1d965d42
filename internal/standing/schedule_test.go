package standing_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/standing"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/postgres"
	"github.com/airlockhq/airlock/internal/testenv"
)

// clock is the tests' time: it moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// start is a Monday, so that every weekday schedule has ticks ahead;
// the tests never compare it with the wall clock.
var start = time.Date(2031, 3, 3, 12, 0, 0, 0, time.UTC)

func demo(t *testing.T, driver string) (*testenv.Demo, *clock) {
	t.Helper()
	d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
	c := &clock{t: start}
	d.Now = c.Now
	return d, c
}

func person(t *testing.T, d *testenv.Demo, name string) *identity.Principal {
	t.Helper()
	ctx := context.Background()
	u, err := d.Store.UserGetByUsername(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := authz.GroupsOf(ctx, d.Store, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return &identity.Principal{UserID: u.ID, Username: u.Username, Groups: gs}
}

func wantKind(t *testing.T, err error, kind airlock.Kind, contains string) {
	t.Helper()
	if airlock.ErrorKind(err) != kind || !strings.Contains(err.Error(), contains) {
		t.Fatalf("got %v (%s), want %s containing %q", err, airlock.ErrorKind(err), kind, contains)
	}
}

func asError(err error, target **airlock.Error) bool { return errors.As(err, target) }

func scheduledRuns(t *testing.T, s store.Reader, id string) []*store.Run {
	t.Helper()
	all, err := s.RunList(context.Background(), store.RunListParams{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []*store.Run
	for _, r := range all {
		if r.StandingID == id {
			out = append(out, r)
		}
	}
	return out
}

func propose(t *testing.T, d *testenv.Demo, name string, spec standing.ScheduleSpec) *store.Standing {
	t.Helper()
	st, err := d.Standing.ProposeSchedule(context.Background(), person(t, d, "alice"), standing.ScheduleRequest{Name: name,
		Procedure: "rotate-logs", Environment: "staging", Params: map[string]any{"keep_days": "3"}, ScheduleSpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func approve(t *testing.T, d *testenv.Demo, st *store.Standing, who string) *store.Standing {
	t.Helper()
	got, err := d.Standing.Decide(context.Background(), person(t, d, who), store.StandingSchedule, st.Name, "approve", st.Binding, "fine")
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func pass(t *testing.T, d *testenv.Demo) {
	t.Helper()
	if err := d.Standing.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestScheduleLifecycle: a schedule is proposed, refused to its
// proposer and to someone policy does not let approve runs, approved
// by another bound to what they saw, ticks on the injected clock (one
// run per tick, attributed to the schedule, carrying the standing
// approval), is suspended by a new procedure version and by a policy
// change, and runs again only once approved again.
func TestScheduleLifecycle(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			d, c := demo(t, driver)
			st := propose(t, d, "nightly-rotate", standing.ScheduleSpec{Cron: "0 3 * * *", TimeZone: "Europe/Berlin"})
			if st.Status != store.StandingPending || st.ApprovalsRequired != 1 || len(st.Targets) == 0 {
				t.Fatalf("proposed: %+v", st)
			}
			ticks, err := standing.NextTicks(standing.ScheduleSpec{Cron: "0 3 * * *", TimeZone: "Europe/Berlin"}, c.Now(), 5)
			if err != nil || len(ticks) != 5 || ticks[0].UTC() != time.Date(2031, 3, 4, 2, 0, 0, 0, time.UTC) {
				t.Fatalf("next ticks: %v %v", ticks, err)
			}

			_, err = d.Standing.Decide(ctx, person(t, d, "alice"), store.StandingSchedule, st.Name, "approve", st.Binding, "")
			wantKind(t, err, airlock.Forbidden, "you proposed this schedule")
			_, err = d.Standing.Decide(ctx, person(t, d, "erin"), store.StandingSchedule, st.Name, "approve", st.Binding, "")
			wantKind(t, err, airlock.Forbidden, "")
			_, err = d.Standing.Decide(ctx, person(t, d, "bob"), store.StandingSchedule, st.Name, "approve", "sha256:other", "")
			wantKind(t, err, airlock.Conflict, "binding")
			// Nothing ticks before it is approved.
			c.Set(ticks[0].Add(time.Second))
			pass(t, d)
			if rs := scheduledRuns(t, d.Store, st.ID); len(rs) != 0 {
				t.Fatalf("a pending schedule ran: %+v", rs)
			}

			st = approve(t, d, st, "bob")
			if st.Status != store.StandingActive {
				t.Fatalf("after bob's approval: %s", st.Status)
			}
			c.Set(ticks[1].Add(time.Second))
			pass(t, d)
			pass(t, d) // a second pass finds nothing new
			rs := scheduledRuns(t, d.Store, st.ID)
			if len(rs) != 1 {
				t.Fatalf("runs after one tick: %d", len(rs))
			}
			r := rs[0]
			if r.RequesterName != "schedule:nightly-rotate" || r.Status != store.RunQueued || r.ApprovalsRequired != 1 || r.Binding != st.Binding {
				t.Fatalf("scheduled run: %+v", r)
			}
			// alice follows her schedule's runs as her own (policy:
			// requesters-follow-their-runs); erin does not.
			if _, err := d.Runs.Get(ctx, person(t, d, "alice"), r.ID); err != nil {
				t.Fatalf("alice views her schedule's run: %v", err)
			}
			if _, err := d.Runs.Get(ctx, person(t, d, "erin"), r.ID); airlock.ErrorKind(err) != airlock.NotFound {
				t.Fatalf("erin views alice's schedule's run: %v", err)
			}
			as, err := d.Store.RunApprovalList(ctx, r.ID)
			if err != nil || len(as) != 1 || as[0].ApproverName != "bob" || as[0].Binding != r.Binding {
				t.Fatalf("the run's approvals: %+v %v", as, err)
			}

			// A new version of rotate-logs suspends it.
			newVersion(t, d, "rotate-logs", "echo compressed again")
			c.Set(ticks[2].Add(time.Second))
			pass(t, d)
			st, _ = d.Store.StandingGet(ctx, st.ID)
			if st.Status != store.StandingSuspended || !strings.Contains(st.StatusReason, "is in service now") {
				t.Fatalf("after a new version: %s %q", st.Status, st.StatusReason)
			}
			if rs := scheduledRuns(t, d.Store, st.ID); len(rs) != 1 {
				t.Fatalf("a suspended schedule ran: %d runs", len(rs))
			}
			// Resumed, it is proposed again bound to the new version;
			// bob's old approval does not count.
			st, err = d.Standing.Resume(ctx, person(t, d, "alice"), store.StandingSchedule, st.Name, "new version reviewed")
			if err != nil || st.Status != store.StandingPending {
				t.Fatalf("resume: %+v %v", st, err)
			}
			st = approve(t, d, st, "bob")
			if st.Status != store.StandingActive {
				t.Fatalf("re-approved: %s", st.Status)
			}

			// A policy that no longer lets alice run or request it
			// suspends it too.
			changePolicy(t, d, func(text string) string {
				return strings.Replace(text, `when { resource.risk == "low" && context.environment == "staging" };`,
					`when { resource.risk == "low" && context.environment == "staging" && resource.name != "rotate-logs" };`, 1)
			})
			c.Set(ticks[3].Add(time.Second))
			pass(t, d)
			st, _ = d.Store.StandingGet(ctx, st.ID)
			if st.Status != store.StandingSuspended || !strings.Contains(st.StatusReason, "no policy in force lets alice") {
				t.Fatalf("after the policy change: %s %q", st.Status, st.StatusReason)
			}
			if rs := scheduledRuns(t, d.Store, st.ID); len(rs) != 1 {
				t.Fatalf("runs: %d", len(rs))
			}
			_, err = d.Standing.Resume(ctx, person(t, d, "alice"), store.StandingSchedule, st.Name, "")
			wantKind(t, err, airlock.Conflict, "cannot be resumed")

			// Every change and tick is in the audit log.
			for _, typ := range []string{"schedule.propose", "schedule.approve_denied", "schedule.approve", "schedule.activate",
				"schedule.tick", "schedule.suspend", "schedule.resume"} {
				evs, err := d.Store.AuditList(ctx, store.AuditListParams{After: -1, Type: typ, Subject: st.ID, Limit: 100})
				if err != nil || len(evs) == 0 {
					t.Errorf("no %s event: %v", typ, err)
				}
			}
		})
	}
}

// newVersion proposes a version of name with another last step and has
// bob review it into service.
func newVersion(t *testing.T, d *testenv.Demo, name, echo string) {
	t.Helper()
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join("..", "demo", "catalog", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte("  - name: again\n    script: "+echo+"\n")...)
	srcs, err := procedure.Parse(name+".yaml", data)
	if err != nil || len(srcs) != 1 {
		t.Fatalf("parse: %v", err)
	}
	res, err := d.Review.Propose(ctx, person(t, d, "alice"), srcs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Review.Review(ctx, person(t, d, "bob"), res.Version.ID, res.Version.Digest, store.ReviewApprove, "ok"); err != nil {
		t.Fatal(err)
	}
	if p, _ := d.Store.ProcedureGetByName(ctx, name); p.ActiveVersionID != res.Version.ID {
		t.Fatal("the new version is not in service")
	}
}

// changePolicy puts a changed policy in force: bob proposes, carol
// approves.
func changePolicy(t *testing.T, d *testenv.Demo, edit func(string) string) {
	t.Helper()
	ctx := context.Background()
	cur, err := d.Store.PolicyVersionList(ctx, store.PolicyActive)
	if err != nil || len(cur) != 1 {
		t.Fatalf("active policy: %v", err)
	}
	text := edit(cur[0].Text)
	if text == cur[0].Text {
		t.Fatal("the edit changed nothing")
	}
	pv, err := d.Authz.ProposePolicy(ctx, person(t, d, "bob"), text, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authz.DecidePolicy(ctx, person(t, d, "carol"), pv.ID, "approve", pv.Digest, "ok"); err != nil {
		t.Fatal(err)
	}
}

// TestMissedTicksAndOverlap: after downtime (the clock jumps 5 hours
// on an hourly schedule) skip records the missed ticks and starts
// nothing; run-once starts one run; a tick while the previous run is
// still going is skipped and recorded; a clock that jumps back starts
// nothing twice.
func TestMissedTicksAndOverlap(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			d, c := demo(t, driver)
			skip := approve(t, d, propose(t, d, "hourly-skip", standing.ScheduleSpec{Cron: "@hourly", AllowOverlap: true}), "bob")
			once := approve(t, d, propose(t, d, "hourly-once", standing.ScheduleSpec{Cron: "0 * * * *", Missed: standing.MissedRunOnce, AllowOverlap: true}), "bob")
			c.Set(start.Add(5*time.Hour + 30*time.Second))
			pass(t, d)
			if rs := scheduledRuns(t, d.Store, skip.ID); len(rs) != 1 {
				// 13:00..16:00 missed, 17:00 on time.
				t.Fatalf("skip: %d runs, want the on-time tick's only", len(rs))
			}
			evs, _ := d.Store.StandingEventList(ctx, skip.ID, 10)
			if len(evs) != 2 || evs[0].Outcome != "started" && evs[1].Outcome != "started" {
				t.Fatalf("skip events: %+v", evs)
			}
			if rs := scheduledRuns(t, d.Store, once.ID); len(rs) != 1 {
				t.Fatalf("run-once with a tick on time: %d runs", len(rs))
			}

			// Down for longer than the grace, no tick on time.
			c.Set(start.Add(9*time.Hour + 20*time.Minute))
			pass(t, d)
			if rs := scheduledRuns(t, d.Store, skip.ID); len(rs) != 1 {
				t.Fatalf("skip after downtime: %d runs", len(rs))
			}
			if rs := scheduledRuns(t, d.Store, once.ID); len(rs) != 2 {
				t.Fatalf("run-once after downtime: %d runs, want one more", len(rs))
			}
			missed, _ := d.Store.AuditList(ctx, store.AuditListParams{After: -1, Type: "schedule.missed", Subject: skip.ID, Limit: 10})
			if len(missed) != 2 {
				t.Fatalf("missed summaries: %d", len(missed))
			}
			// The clock jumps back: nothing already dealt with runs again.
			c.Set(start.Add(2*time.Hour + 10*time.Second))
			pass(t, d)
			if rs := scheduledRuns(t, d.Store, skip.ID); len(rs) != 1 {
				t.Fatalf("after the clock went back: %d runs", len(rs))
			}

			// Overlap: the run of the previous tick is still queued.
			ov := approve(t, d, propose(t, d, "no-overlap", standing.ScheduleSpec{Cron: "*/10 * * * *"}), "bob")
			at := c.Now().Truncate(10 * time.Minute)
			for i := 1; i <= 2; i++ {
				c.Set(at.Add(time.Duration(i)*10*time.Minute + time.Second))
				pass(t, d)
			}
			if rs := scheduledRuns(t, d.Store, ov.ID); len(rs) != 1 {
				t.Fatalf("overlapping ticks started %d runs", len(rs))
			}
			evs, _ = d.Store.StandingEventList(ctx, ov.ID, 10)
			if len(evs) != 2 || evs[0].Outcome != "skipped_overlap" || !strings.Contains(evs[0].Detail, "still queued") {
				t.Fatalf("overlap events: %+v", evs)
			}
		})
	}
}

// TestThreeReplicasFiftyTicks: three replicas on one PostgreSQL
// database pass over a schedule at every one of 50 ticks, all at once:
// 50 runs, one per tick.
func TestThreeReplicasFiftyTicks(t *testing.T) {
	d, c := demo(t, "postgres")
	ctx := context.Background()
	st := approve(t, d, propose(t, d, "every-minute", standing.ScheduleSpec{Cron: "* * * * *", AllowOverlap: true}), "bob")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	replicas := []*standing.Service{d.Standing}
	for range 2 {
		s, err := postgres.Open(ctx, d.Config.Database.URL, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		kr, err := secret.NewKeyring(make([]byte, secret.KeySize))
		if err != nil {
			t.Fatal(err)
		}
		runs := run.New(s, d.Authz, kr, nil, run.DefaultConfig(), log, c.Now)
		replicas = append(replicas, standing.New(s, d.Authz, runs, standing.DefaultConfig(), log, c.Now))
	}
	at := c.Now().Truncate(time.Minute)
	for i := 1; i <= 50; i++ {
		c.Set(at.Add(time.Duration(i)*time.Minute + 2*time.Second))
		var wg sync.WaitGroup
		errs := make([]error, len(replicas))
		for j, r := range replicas {
			wg.Add(1)
			go func() { defer wg.Done(); errs[j] = r.Pass(ctx) }()
		}
		wg.Wait()
		for j, err := range errs {
			if err != nil {
				t.Fatalf("tick %d, replica %d: %v", i, j, err)
			}
		}
	}
	rs := scheduledRuns(t, d.Store, st.ID)
	if len(rs) != 50 {
		t.Fatalf("%d runs for 50 ticks", len(rs))
	}
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.Reason] {
			t.Fatalf("two runs for %s", r.Reason)
		}
		seen[r.Reason] = true
	}
	ticks, _ := d.Store.AuditList(ctx, store.AuditListParams{After: -1, Type: "schedule.tick", Subject: st.ID, Limit: 1000})
	if len(ticks) != 50 {
		t.Fatalf("%d tick events", len(ticks))
	}
}

// TestScheduleProposalRefused: bad cron expressions, time zones and
// parameters are refused naming the field, nothing is stored; a person
// policy does not let request the run cannot propose it.
func TestScheduleProposalRefused(t *testing.T) {
	d, _ := demo(t, "sqlite")
	ctx := context.Background()
	alice := person(t, d, "alice")
	for _, tc := range []struct {
		req   standing.ScheduleRequest
		field string
	}{
		{standing.ScheduleRequest{Name: "Bad Name", Procedure: "rotate-logs", Environment: "staging", ScheduleSpec: standing.ScheduleSpec{Cron: "@daily"}}, "name"},
		{standing.ScheduleRequest{Name: "x", Procedure: "rotate-logs", Environment: "staging", ScheduleSpec: standing.ScheduleSpec{Cron: "61 * * * *"}}, "cron"},
		{standing.ScheduleRequest{Name: "x", Procedure: "rotate-logs", Environment: "staging", ScheduleSpec: standing.ScheduleSpec{Cron: "@every 1s"}}, "cron"},
		{standing.ScheduleRequest{Name: "x", Procedure: "rotate-logs", Environment: "staging", ScheduleSpec: standing.ScheduleSpec{Cron: "CRON_TZ=UTC 0 * * * *"}}, "cron"},
		{standing.ScheduleRequest{Name: "x", Procedure: "rotate-logs", Environment: "staging", ScheduleSpec: standing.ScheduleSpec{Cron: "@daily", TimeZone: "Mars/Olympus"}}, "time_zone"},
		{standing.ScheduleRequest{Name: "x", Procedure: "rotate-logs", Environment: "staging", ScheduleSpec: standing.ScheduleSpec{Cron: "@daily", Missed: "catch-up"}}, "missed"},
		{standing.ScheduleRequest{Name: "x", Procedure: "rotate-logs", Environment: "staging", Params: map[string]any{"keep_days": "$(id)"}, ScheduleSpec: standing.ScheduleSpec{Cron: "@daily"}}, "params.keep_days"},
		{standing.ScheduleRequest{Name: "x", Procedure: "rotate-logs", Environment: "moon", ScheduleSpec: standing.ScheduleSpec{Cron: "@daily"}}, "environment"},
	} {
		_, err := d.Standing.ProposeSchedule(ctx, alice, tc.req)
		var e *airlock.Error
		if !asError(err, &e) || e.Field != tc.field {
			t.Errorf("%+v: got %v, want a %s field error", tc.req, err, tc.field)
		}
	}
	// erin (NOC) may not run or request rotate-logs... she may request
	// anything: dana (compliance) may neither.
	_, err := d.Standing.ProposeSchedule(ctx, person(t, d, "dana"), standing.ScheduleRequest{Name: "x", Procedure: "rotate-logs",
		Environment: "staging", ScheduleSpec: standing.ScheduleSpec{Cron: "@daily"}})
	wantKind(t, err, airlock.Forbidden, "")
	if l, _ := d.Store.StandingList(ctx, "", ""); len(l) != 0 {
		t.Fatalf("refused proposals were stored: %+v", l)
	}
}

// TestEvidenceShowsStandingApprovals: a bundle of a period in which a
// schedule ran lists each scheduled run with the standing approval it
// ran under (proposer alice, approver bob, from events before the
// period too), the standing-approvals control holds, alice's refused
// self-approval is a refused attempt, and the bundle verifies offline.
func TestEvidenceShowsStandingApprovals(t *testing.T) {
	d, c := demo(t, "sqlite")
	ctx := context.Background()
	st := propose(t, d, "hourly", standing.ScheduleSpec{Cron: "@hourly", AllowOverlap: true})
	d.Standing.Decide(ctx, person(t, d, "alice"), store.StandingSchedule, st.Name, "approve", st.Binding, "")
	approve(t, d, st, "bob")
	from := start.Add(90 * time.Minute) // after the approval
	for i := 1; i <= 3; i++ {
		c.Set(start.Add(time.Duration(i)*time.Hour + time.Second))
		pass(t, d)
	}
	var buf bytes.Buffer
	if err := evidence.Export(ctx, d.Store, d.AuditLog, evidence.Params{From: from, To: start.Add(4 * time.Hour), Now: c.Now}, &buf); err != nil {
		t.Fatal(err)
	}
	res, err := evidence.Verify(buf.Bytes(), d.AuditLog.VerifierKey)
	if err != nil || !res.OK() {
		t.Fatalf("verify: %+v %v", res, err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var sum evidence.Summary
	for _, f := range zr.File {
		if f.Name != "summary.json" {
			continue
		}
		rc, _ := f.Open()
		json.NewDecoder(rc).Decode(&sum)
		rc.Close()
	}
	if len(sum.Unattended) != 2 {
		t.Fatalf("unattended runs in the period: %+v", sum.Unattended)
	}
	for _, u := range sum.Unattended {
		if u.Name != "hourly" || u.Proposer != "alice" || len(u.Approvers) != 1 || u.Approvers[0] != "bob" || u.Kind != "schedule" {
			t.Fatalf("unattended run: %+v", u)
		}
	}
	for _, ctl := range sum.Controls {
		if ctl.ID != "standing-approvals" {
			continue
		}
		if ctl.Checked != 2 || len(ctl.Exceptions) != 0 || len(ctl.Attempts) != 0 {
			// alice's refusal was before the period: not an attempt in it.
			t.Fatalf("standing-approvals: %+v", ctl)
		}
		return
	}
	t.Fatal("no standing-approvals control")
}

// TestDaylightSavingTicks: in Europe/Berlin a daily 02:30 schedule does
// not fire on the night the clocks go forward (02:30 does not happen)
// and fires once, not twice, on the night they go back; an hourly one
// fires every real hour of that night.
func TestDaylightSavingTicks(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	daily := standing.ScheduleSpec{Cron: "30 2 * * *", TimeZone: "Europe/Berlin"}
	back := time.Date(2027, 10, 30, 12, 0, 0, 0, berlin) // clocks go back on the 31st
	ticks, err := standing.NextTicks(daily, back, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{time.Date(2027, 10, 31, 0, 30, 0, 0, time.UTC), time.Date(2027, 11, 1, 1, 30, 0, 0, time.UTC), time.Date(2027, 11, 2, 1, 30, 0, 0, time.UTC)}
	for i := range want {
		if !ticks[i].Equal(want[i]) {
			t.Fatalf("daily ticks around the autumn change: %v, want %v", ticks, want)
		}
	}
	forward := time.Date(2027, 3, 27, 12, 0, 0, 0, berlin) // clocks go forward on the 28th
	ticks, _ = standing.NextTicks(daily, forward, 2)
	if ticks[0].In(berlin).Day() == 28 && ticks[0].In(berlin).Hour() == 2 {
		t.Fatalf("a 02:30 tick on the spring night: %v", ticks)
	}
	hourly := standing.ScheduleSpec{Cron: "0 * * * *", TimeZone: "Europe/Berlin"}
	// 02:00 CEST (00:00 UTC) and 02:00 CET (01:00 UTC) are both hours.
	ticks, _ = standing.NextTicks(hourly, time.Date(2027, 10, 30, 23, 30, 0, 0, time.UTC), 3)
	if !ticks[0].Equal(time.Date(2027, 10, 31, 0, 0, 0, 0, time.UTC)) || !ticks[1].Equal(time.Date(2027, 10, 31, 1, 0, 0, 0, time.UTC)) ||
		!ticks[2].Equal(time.Date(2027, 10, 31, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("hourly ticks through the autumn change: %v", ticks)
	}
}
