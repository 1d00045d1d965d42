package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/testenv"
)

// stepClock is a server clock that stands still until the test moves it.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// scheduleOf decodes the schedule that `-o json` printed.
func scheduleOf(t *testing.T, out string) api.ScheduleJSON {
	t.Helper()
	var s api.ScheduleJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Name == "" {
		t.Fatalf("not a schedule as JSON (%v): %q", err, out)
	}
	return s
}

// TestSchedulesFromTheCLI: alice proposes a nightly log rotation and
// sees its binding and next five ticks in Berlin time; she cannot
// approve it herself and is told why; bob sees what he approves and
// approves it; at its tick (on the server's clock) it starts a run
// requested as the schedule, which show and list report; alice pauses
// it, bob resumes it, alice deletes it.
func TestSchedulesFromTheCLI(t *testing.T) {
	d := testenv.DemoServer(t)
	clock := &stepClock{now: time.Now()}
	d.Server.Now = clock.Now
	as := serveDemo(t, d)
	alice, bob := as("alice"), as("bob")

	if code, _, stderr := alice.run("schedules", "propose", "--name", "nightly-rotate", "--procedure", "rotate-logs"); code != exitUsage || !strings.Contains(stderr, "--env is required") {
		t.Fatalf("propose without --env: %d %s", code, stderr)
	}
	code, out, stderr := alice.run("schedules", "propose", "--name", "nightly-rotate", "--procedure", "rotate-logs", "--env", "staging",
		"--param", "keep_days=3", "--cron", "30 2 * * *", "--tz", "Europe/Berlin", "--reason", "the disk fills up at night")
	if code != 0 {
		t.Fatalf("propose: %d %s %s", code, out, stderr)
	}
	for _, want := range []string{"rotate-logs in staging", "pending_approval", `{"keep_days":3}`, "binding", "sha256:", "airlock schedules approve nightly-rotate"} {
		if !strings.Contains(out, want) {
			t.Errorf("propose printed no %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, " 02:30 CE"); n != 5 {
		t.Errorf("propose printed %d ticks at 02:30 Berlin time, want the next five:\n%s", n, out)
	}
	_, out, _ = alice.run("schedules", "show", "nightly-rotate", "-o", "json")
	proposed := scheduleOf(t, out)
	if !strings.Contains(out, "binding") || len(proposed.NextTicks) != 5 {
		t.Fatalf("show -o json: %s", out)
	}

	if code, _, stderr := alice.run("schedules", "approve", "nightly-rotate"); code != 1 || !strings.Contains(stderr, "you proposed this schedule; someone else must approve it") {
		t.Fatalf("alice approves her own schedule: %d %s", code, stderr)
	}
	code, out, stderr = bob.run("schedules", "approve", "nightly-rotate", "-m", "nightly is fine")
	if code != 0 || !strings.Contains(out, "nightly-rotate: active") {
		t.Fatalf("bob approves: %d %s %s", code, out, stderr)
	}
	// bob was shown what he approved, down to the binding he sent.
	for _, want := range []string{"rotate-logs in staging", `{"keep_days":3}`, proposed.Binding, proposed.Digest, "30 2 * * * (Europe/Berlin)", "next ticks"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("approve showed no %q:\n%s", want, stderr)
		}
	}

	// Its first tick, on the server's clock: a run requested as the
	// schedule, on the standing approval. The test passes the scheduler
	// itself (testenv's Serve does not start it).
	clock.Set(proposed.NextTicks[0].Add(time.Second))
	if err := d.Standing.Pass(t.Context()); err != nil {
		t.Fatalf("scheduler pass: %v", err)
	}
	var ticked api.ScheduleJSON
	waitFor(t, 30*time.Second, func() error {
		_, out, _ := alice.run("schedules", "show", "nightly-rotate", "-o", "json")
		ticked = scheduleOf(t, out)
		if len(ticked.History) == 0 || ticked.History[0].RunID == "" {
			return fmt.Errorf("a tick that started a run; history %+v", ticked.History)
		}
		return nil
	})
	if h := ticked.History[0]; h.Outcome != "started" || h.Key != proposed.NextTicks[0].UTC().Format(time.RFC3339) {
		t.Fatalf("the tick: %+v, want started at %v", h, proposed.NextTicks[0])
	}
	runID := ticked.History[0].RunID
	if code, out, _ := alice.run("schedules", "show", "nightly-rotate"); code != 0 || !strings.Contains(out, runID) || !strings.Contains(out, "started") ||
		!strings.Contains(out, "bob approve (in force): nightly is fine") {
		t.Fatalf("show: %d %s", code, out)
	}
	if code, out, stderr := alice.run("runs", "show", runID); code != 0 || !strings.Contains(out, "schedule:nightly-rotate") ||
		!strings.Contains(out, "standing approval") {
		t.Fatalf("the scheduled run: %d %s %s", code, out, stderr)
	}
	code, out, _ = bob.run("schedules", "list")
	if code != 0 {
		t.Fatalf("list: %d %s", code, out)
	}
	row := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "nightly-rotate ") {
			row = l
		}
	}
	for _, want := range []string{"rotate-logs", "staging", "30 2 * * *", "Europe/Berlin", "active", "02:30 CE", "alice"} {
		if !strings.Contains(row, want) {
			t.Errorf("list row lacks %q: %q\n%s", want, row, out)
		}
	}

	if code, out, stderr := alice.run("schedules", "pause", "nightly-rotate", "-m", "freeze week"); code != 0 || !strings.Contains(out, "nightly-rotate: paused") {
		t.Fatalf("alice pauses: %d %s %s", code, out, stderr)
	}
	if code, out, stderr := bob.run("schedules", "resume", "nightly-rotate"); code != 0 || !strings.Contains(out, "nightly-rotate: active") {
		t.Fatalf("bob resumes: %d %s %s", code, out, stderr)
	}
	if code, out, stderr := alice.run("schedules", "delete", "nightly-rotate", "-o", "yaml"); code != 0 || !strings.Contains(out, "status: deleted") {
		t.Fatalf("alice deletes: %d %s %s", code, out, stderr)
	}
	if code, out, _ := alice.run("schedules", "list"); code != 0 || strings.Contains(out, "nightly-rotate") {
		t.Fatalf("a deleted schedule is listed: %d %s", code, out)
	}
	if code, _, stderr := alice.run("schedules", "show", "no-such"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("show of nothing: %d %s", code, stderr)
	}
}
