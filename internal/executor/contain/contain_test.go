//go:build linux

package contain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/executor/contain"
	"github.com/airlockhq/airlock/internal/testenv"
)

// manager makes a Manager recording in dir, in cgroup mode (skipping, or
// failing under AIRLOCK_TEST_STRICT=1, where cgroup v2 is not usable) or
// in the fallback. It is closed at cleanup.
func manager(t *testing.T, dir string, cgroup bool) *contain.Manager {
	t.Helper()
	m, err := contain.New(dir, contain.Options{NoCgroup: !cgroup})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if cgroup && m.Cgroup() == "" {
		testenv.Missing(t, "cgroup v2 is not usable here ("+m.Fallback()+"); skipping cgroup containment tests")
	}
	if !cgroup && m.Fallback() == "" {
		t.Fatal("Options.NoCgroup did not select the fallback")
	}
	return m
}

var modes = []struct {
	name   string
	cgroup bool
}{{"cgroup", true}, {"fallback", false}}

// alive reports whether pid runs; a zombie (killed, not yet reaped by
// whoever inherited it) does not.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// script starts two background sleeps, one in the step's process group
// and one in a session of its own (setsid), writes their PIDs to
// dir/bg and dir/sid, and waits.
func script(dir string) string {
	return fmt.Sprintf(`sleep 300 >/dev/null 2>&1 & echo $! > %[1]s/bg.tmp && mv %[1]s/bg.tmp %[1]s/bg
setsid sleep 300 >/dev/null 2>&1 & echo $! > %[1]s/sid.tmp && mv %[1]s/sid.tmp %[1]s/sid
wait
`, dir)
}

// pids waits for the PIDs script writes, and kills them at cleanup
// whatever the test did.
func pids(t *testing.T, dir string) (bg, sid int) {
	t.Helper()
	read := func(name string) int {
		var pid int
		testenv.Eventually(t, "the step to write "+name, func() bool {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil {
				pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			}
			return pid != 0
		})
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		return pid
	}
	bg, sid = read("bg"), read("sid")
	if !alive(bg) || !alive(sid) {
		t.Fatalf("the step's sleeps %d and %d are not both running", bg, sid)
	}
	return bg, sid
}

func gone(t *testing.T, what string, pid int) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("%s (%d) to be killed", what, pid), func() bool { return !alive(pid) })
}

// TestAFrozenStepCgroupIsNotReused: a step cgroup left frozen once its
// processes are gone (its freezing asked for as it emptied) is not given
// to the next step, which would start frozen and never run.
func TestAFrozenStepCgroupIsNotReused(t *testing.T) {
	m := manager(t, filepath.Join(t.TempDir(), "records"), true)
	g, err := m.Start(exec.Command("/bin/true"))
	if err != nil {
		t.Fatal(err)
	}
	frozen := contain.CgroupOf(g)
	w, c := g.Wait(func() {
		// The leader has exited, unreaped: freeze its emptied cgroup.
		if err := os.WriteFile(filepath.Join(frozen, "cgroup.freeze"), []byte("1"), 0); err != nil {
			t.Error(err)
		}
	})
	if w != nil || c != nil {
		t.Fatalf("wait: %v; contain: %v", w, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g2, err := m.Start(exec.CommandContext(ctx, "/bin/true"))
	if err != nil {
		t.Fatal(err)
	}
	if got := contain.CgroupOf(g2); got == frozen {
		t.Errorf("the next step was given the frozen cgroup %s", got)
	}
	if w, c := g2.Wait(nil); w != nil || c != nil || ctx.Err() != nil {
		t.Fatalf("the next step: %v; contain: %v (waited: %v)", w, c, ctx.Err())
	}
}

// TestWaitKillsWhatTheLeaderLeft: when a step's command exits, what it
// started is killed — with cgroups also what called setsid; the
// fallback kills the process group only.
func TestWaitKillsWhatTheLeaderLeft(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			records := filepath.Join(t.TempDir(), "records")
			m := manager(t, records, mode.cgroup)
			dir := t.TempDir()
			cmd := exec.Command("/bin/sh", "-c", strings.Replace(script(dir), "wait", "exit 0", 1))
			g, err := m.Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			bg, sid := pids(t, dir)
			waitErr, containErr := g.Wait(nil)
			if waitErr != nil || containErr != nil {
				t.Fatalf("wait: %v; contain: %v", waitErr, containErr)
			}
			gone(t, "the background sleep", bg)
			if mode.cgroup {
				gone(t, "the setsid sleep", sid)
				// The instance cgroup and its record stay for the next
				// steps (the emptied step cgroup is reused) until Close.
				if _, err := os.Stat(m.Cgroup()); err != nil {
					t.Fatalf("the instance cgroup %s is gone before Close: %v", m.Cgroup(), err)
				}
				g2, err := m.Start(exec.Command("/bin/true"))
				if err != nil {
					t.Fatal(err)
				}
				if w, c := g2.Wait(nil); w != nil || c != nil {
					t.Fatalf("a second step in the reused cgroup: %v; contain: %v", w, c)
				}
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(m.Cgroup()); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the instance cgroup %s is left after Close: %v", m.Cgroup(), err)
				}
			} else if !alive(sid) {
				t.Fatalf("the setsid sleep %d was killed in the fallback: update docs/runs.md, which says it escapes", sid)
			}
			// Nothing runs (and, with cgroups, the manager is closed):
			// nothing is recorded.
			if _, err := os.Stat(records); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the record directory of an idle instance is left: %v", err)
			}
		})
	}
}

// TestHelperOwner is run as a child process by the tests below: it
// contains a step running script in the record directory it is given,
// and waits until its stdin closes or it is killed.
func TestHelperOwner(t *testing.T) {
	dir := os.Getenv("CONTAIN_HELPER_RECORDS")
	if dir == "" {
		t.Skip("run by TestReap… as a child process")
	}
	m, err := contain.New(dir, contain.Options{NoCgroup: os.Getenv("CONTAIN_HELPER_CGROUP") != "1"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close() // unless killed, as it is meant to be
	if _, err := m.Start(exec.Command("/bin/sh", "-c", script(os.Getenv("CONTAIN_HELPER_PIDS")))); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// owner starts TestHelperOwner, whose step writes its PIDs to a
// directory of the test's, and returns it with the sleeps' PIDs.
func owner(t *testing.T, records string, cgroup bool) (*exec.Cmd, int, int) {
	t.Helper()
	dir := t.TempDir()
	// Whatever the test did, nothing of the owner's is left.
	t.Cleanup(func() { _, _ = contain.Reap(records) })
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOwner$", "-test.v")
	cmd.Env = append(os.Environ(), "CONTAIN_HELPER_RECORDS="+records, "CONTAIN_HELPER_PIDS="+dir,
		"CONTAIN_HELPER_CGROUP="+map[bool]string{true: "1"}[cgroup])
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("owner's output:\n%s", out.String())
		}
	})
	bg, sid := pids(t, dir)
	return cmd, bg, sid
}

// crash kills the owner with SIGKILL and reaps it.
func crash(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var exitErr *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exitErr) {
		t.Fatalf("the owner was not killed: %v", err)
	}
}

// TestReapKillsWhatACrashedOwnerLeft: an Airlock killed with SIGKILL
// leaves its step's background processes running; Reap, at the next
// start, kills them — with cgroups also the one that called setsid. In
// the fallback that one escapes: it left the process group.
func TestReapKillsWhatACrashedOwnerLeft(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			if mode.cgroup {
				manager(t, t.TempDir(), true) // skips where cgroup v2 is not usable
			}
			records := t.TempDir()
			cmd, bg, sid := owner(t, records, mode.cgroup)
			recs, _ := filepath.Glob(filepath.Join(records, "*.json"))
			if len(recs) != 1 {
				t.Fatalf("%d records of the owner, want 1", len(recs))
			}
			cgroup := recordedCgroup(t, recs[0])
			if mode.cgroup != (cgroup != "") {
				t.Fatalf("the owner recorded cgroup %q in %s mode", cgroup, mode.name)
			}
			if _, err := os.Stat(cgroup); mode.cgroup && err != nil {
				t.Fatalf("the owner's cgroup: %v", err)
			}
			crash(t, cmd)
			if !alive(bg) || !alive(sid) {
				t.Fatalf("after the owner's death its step's sleeps %d and %d do not both run; nothing left to reap", bg, sid)
			}
			r, err := contain.Reap(records)
			if err != nil {
				t.Fatal(err)
			}
			gone(t, "the background sleep", bg)
			if mode.cgroup {
				gone(t, "the setsid sleep", sid)
				if _, err := os.Stat(cgroup); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the dead owner's cgroup %s is left: %v", cgroup, err)
				}
			} else {
				if !alive(sid) {
					t.Fatalf("the setsid sleep %d was killed in the fallback: update docs/runs.md, which says it escapes", sid)
				}
				if r.Groups != 1 {
					t.Fatalf("%+v: want the step's process group killed", r)
				}
			}
			if r.Instances != 1 || r.Processes < 2 || r.Live != 0 {
				t.Fatalf("%+v: want one instance cleared and its processes counted", r)
			}
			if _, err := os.Stat(records); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the record directory is left after the reap: %v", err)
			}
		})
	}
}

// TestReapLeavesALiveOwnerAlone: a replica starting on the same data
// directory kills nothing of a live one: neither of another process
// nor of another Manager in its own.
func TestReapLeavesALiveOwnerAlone(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			records := t.TempDir()
			// A Manager in this process with a step running...
			first := manager(t, records, mode.cgroup)
			dir := t.TempDir()
			g, err := first.Start(exec.Command("/bin/sh", "-c", script(dir)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = g.Kill(); _, _ = g.Wait(nil) })
			bg1, sid1 := pids(t, dir)
			// ...and one in another live process.
			cmd, bg2, sid2 := owner(t, records, mode.cgroup)
			manager(t, records, mode.cgroup) // a replica starting, idle
			r, err := contain.Reap(records)
			if err != nil {
				t.Fatal(err)
			}
			if r.Live != 2 || r.Instances != 0 || r.Processes != 0 || r.Groups != 0 {
				t.Fatalf("%+v: want two live instances left alone", r)
			}
			for _, pid := range []int{bg1, sid1, bg2, sid2} {
				if !alive(pid) {
					t.Fatalf("Reap killed %d, a live owner's", pid)
				}
			}
			// Once the other process dies, its step goes, and only its.
			crash(t, cmd)
			if r, err = contain.Reap(records); err != nil || r.Instances != 1 || r.Live != 1 {
				t.Fatalf("%+v %v: want the dead owner's instance cleared, the live one left", r, err)
			}
			gone(t, "the dead owner's background sleep", bg2)
			if !alive(bg1) || !alive(sid1) {
				t.Fatal("Reap killed a live owner's step")
			}
		})
	}
}

func recordedCgroup(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct{ Cgroup string }
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Cgroup
}
