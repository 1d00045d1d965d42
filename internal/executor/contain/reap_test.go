//go:build linux

package contain_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	. "github.com/airlockhq/airlock/internal/executor/contain"
	"github.com/airlockhq/airlock/internal/testenv"
)

// deadOwner is this process's identity with the PID of a process that
// has exited and been reaped.
func deadOwner(t *testing.T) Owner {
	t.Helper()
	me, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	me.PID = cmd.Process.Pid
	return me
}

// group starts `sleep 300` leading a process group of its own, killed at
// cleanup.
func group(t *testing.T) (int, uint64) {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	start, _, err := StartTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid, start
}

func exited(pid int) func() bool {
	return func() bool { _, zombie, err := StartTime(pid); return err != nil || zombie }
}

// TestReapNeverKillsAReusedPID: a recorded process group is killed only
// while its leader has the recorded start time; a PID that names a
// process started at another time is left alone, and so are records of
// another PID namespace or host.
func TestReapNeverKillsAReusedPID(t *testing.T) {
	pid, start := group(t)
	dir := t.TempDir()
	dead := deadOwner(t)
	other := dead
	other.PIDNS = "pid:[1]"
	rebooted := dead
	rebooted.Boot = "00000000-0000-0000-0000-000000000000"
	elsewhere := rebooted
	elsewhere.Host = dead.Host + "-elsewhere"
	for name, rec := range map[string]Record{
		"reused":    {Owner: dead, Groups: []Leader{{PGID: pid, Start: start + 1}}},
		"namespace": {Owner: other, Groups: []Leader{{PGID: pid, Start: start}}},
		"rebooted":  {Owner: rebooted, Groups: []Leader{{PGID: pid, Start: start}}},
		"elsewhere": {Owner: elsewhere, Groups: []Leader{{PGID: pid, Start: start}}},
	} {
		if err := WriteRecord(filepath.Join(dir, name+RecordSuffix), rec); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Reap(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r != (Reaped{Instances: 2, Skipped: 1, Foreign: 2}) {
		t.Fatalf("%+v: want the reused and rebooted records cleared, killing nothing, and the other namespace's and host's left", r)
	}
	if exited(pid)() {
		t.Fatalf("Reap killed %d, whose start time is not the recorded one", pid)
	}
	for _, name := range []string{"namespace", "elsewhere"} {
		if _, err := os.Stat(filepath.Join(dir, name+RecordSuffix)); err != nil {
			t.Fatalf("the %s record was removed: %v", name, err)
		}
	}
	// With the start time it was recorded with, the group is the step's.
	if err := WriteRecord(filepath.Join(dir, "same"+RecordSuffix), Record{Owner: dead, Groups: []Leader{{PGID: pid, Start: start}}}); err != nil {
		t.Fatal(err)
	}
	if r, err = Reap(dir); err != nil || r.Groups != 1 || r.Processes != 1 {
		t.Fatalf("%+v %v: want the recorded group killed", r, err)
	}
	testenv.Eventually(t, "the recorded group's leader to be killed", exited(pid))
}

// TestReapRefusesAForeignCgroup: a record naming a cgroup this package
// did not make is not acted on.
func TestReapRefusesAForeignCgroup(t *testing.T) {
	dir := t.TempDir()
	cg := t.TempDir() // not on cgroup2
	if err := WriteRecord(filepath.Join(dir, "x"+RecordSuffix), Record{Owner: deadOwner(t), Cgroup: cg}); err != nil {
		t.Fatal(err)
	}
	if r, err := Reap(dir); err == nil || r.Instances != 0 {
		t.Fatalf("%+v %v: want the record refused", r, err)
	}
	if _, err := os.Stat(cg); err != nil {
		t.Fatal(err)
	}
}
