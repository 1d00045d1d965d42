//go:build linux

package local_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/executor"
	"github.com/airlockhq/airlock/internal/executor/local"
	"github.com/airlockhq/airlock/internal/testenv"
	"golang.org/x/sys/unix"
)

// inode is dir's inode number.
func inode(t *testing.T, dir string) uint64 {
	t.Helper()
	st, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// kept lists the directories kept in parent for later jobs, and fails
// on anything else left there.
func kept(t *testing.T, parent string) []string {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	var free []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".free-") {
			t.Fatalf("%s left behind in %s", e.Name(), parent)
		}
		free = append(free, filepath.Join(parent, e.Name()))
	}
	return free
}

// runIn runs one job of steps in parent/name and returns its output.
func runIn(t *testing.T, e local.Executor, parent, name string, steps ...executor.Step) string {
	t.Helper()
	j, out, errb := job(t, steps...)
	j.WorkDir = filepath.Join(parent, name)
	if res := e.Run(context.Background(), j); res.Status != executor.Succeeded {
		t.Fatalf("%s: %+v\n%s", name, res, errb.String())
	}
	return out.String()
}

func TestAnEndedJobsDirectoryServesTheNext(t *testing.T) {
	e := cgroupExecutor(t)
	e.Dirs = &local.WorkDirs{}
	parent := t.TempDir()
	// A background process the step leaves is killed at its end: it
	// cannot hold the directory.
	runIn(t, e, parent, "run_a.1.airlock", executor.Step{Script: "sleep 60 >/dev/null 2>&1 &", Shell: "/bin/sh"})
	free := kept(t, parent)
	if len(free) != 1 {
		t.Fatalf("kept %v, want one directory", free)
	}
	ino := inode(t, free[0])
	// The next job runs in it, under its own name, and finds it empty.
	dir := filepath.Join(parent, "run_b.1.airlock")
	out := runIn(t, e, parent, "run_b.1.airlock", executor.Step{Script: "pwd; stat -c %i .; ls -A", Shell: "/bin/sh"})
	if want := dir + "\n" + strconv.FormatUint(ino, 10) + "\n"; out != want {
		t.Fatalf("second job printed %q, want %q: its directory, the kept one, empty", out, want)
	}
	if free := kept(t, parent); len(free) != 1 || inode(t, free[0]) != ino {
		t.Fatalf("after the second job kept %v, want the same directory again", free)
	}
}

// A directory a job changed, or whose processes may live on, is removed:
// whatever the job left there cannot reach a later job.
func TestAChangedDirectoryIsNotKept(t *testing.T) {
	for name, script := range map[string]string{
		"a file left":            "echo secret > f",
		"a subdirectory left":    "mkdir d",
		"a hidden file left":     "touch .x",
		"its mode changed":       "chmod 0755 .",
		"replaced by a link":     "d=$(pwd); cd ..; rmdir \"$d\"; ln -s /tmp \"$d\"",
		"replaced by a 0777 dir": "d=$(pwd); cd ..; rmdir \"$d\"; mkdir -m 0777 \"$d\"",
	} {
		t.Run(name, func(t *testing.T) {
			e := cgroupExecutor(t)
			e.Dirs = &local.WorkDirs{}
			parent := t.TempDir()
			runIn(t, e, parent, "run_a.1.airlock", executor.Step{Script: script, Shell: "/bin/sh"})
			if free := kept(t, parent); len(free) != 0 {
				t.Fatalf("kept %v after %s", free, name)
			}
		})
	}
}

func TestWithoutCgroupsNoDirectoryIsKept(t *testing.T) {
	e := local.Executor{Dirs: &local.WorkDirs{}} // process groups only
	parent := t.TempDir()
	runIn(t, e, parent, "run_a.1.airlock", executor.Step{Argv: []string{"true"}})
	if free := kept(t, parent); len(free) != 0 {
		t.Fatalf("kept %v, though a process that left its group could still hold it", free)
	}
}

// An extended attribute (a default ACL is one) set on a job's directory
// would reach the next job's files: such a directory is not kept.
func TestADirectoryWithExtendedAttributesIsNotPristine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run_a.1.airlock")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if !local.Pristine(dir) {
		t.Fatal("a new directory is not pristine")
	}
	if err := unix.Setxattr(dir, "user.airlock-test", []byte("x"), 0); err != nil {
		testenv.Missing(t, "this file system takes no user extended attributes ("+err.Error()+")")
	}
	if local.Pristine(dir) {
		t.Fatal("a directory with an extended attribute is pristine")
	}
}

// A kept directory waits beside the jobs' ones, where any step (Airlock's
// user) can reach it: what a step of another job did to it meanwhile, with
// no process left running, must not reach the job it is given to.
func TestAKeptDirectoryChangedMeanwhileIsNotServed(t *testing.T) {
	for name, script := range map[string]string{
		"a file written in it":        `echo planted > "$1/Makefile"`,
		"replaced by a full one":      `mkdir "$1.new" && touch "$1.new/x" && mv -T "$1.new" "$1"`,
		"its mode changed":            `chmod 0777 "$1"`,
		"replaced by a link":          `rmdir "$1" && ln -s /tmp "$1"`,
		"removed":                     `rmdir "$1"`,
		"replaced by a file":          `rmdir "$1" && touch "$1"`,
		"replaced by a sticky dir":    `rmdir "$1" && mkdir -m 1700 "$1"`,
		"a hidden file written in it": `: > "$1/.x"`,
	} {
		t.Run(name, func(t *testing.T) {
			e, parent, free := keptOne(t)
			// A step of another job, done before the next job starts.
			runIn(t, local.Executor{}, t.TempDir(), "run_c.1.airlock", executor.Step{Argv: []string{"/bin/sh", "-c", script, "sh", free}})
			dir := filepath.Join(parent, "run_b.1.airlock")
			out := runIn(t, e, parent, "run_b.1.airlock", executor.Step{Script: "pwd -P; stat -c %a .; ls -A", Shell: "/bin/sh"})
			if want := dir + "\n700\n"; out != want {
				t.Fatalf("the next job printed %q, want %q: its own directory, mode 0700, empty", out, want)
			}
		})
	}
}

// A directory that grew stays large on ext4 once emptied: every later
// listing of it reads the empty blocks. The next job gets a directory no
// larger than a new one (one block), not that.
func TestAGrownDirectoryIsNotKept(t *testing.T) {
	e := cgroupExecutor(t)
	e.Dirs = &local.WorkDirs{}
	parent := t.TempDir()
	runIn(t, e, parent, "run_a.1.airlock", executor.Step{Shell: "/bin/sh",
		Script: `for i in $(seq 400); do : > ` + strings.Repeat("n", 100) + `$i; done; rm -f n*; stat -c %s .`})
	out := runIn(t, e, parent, "run_b.1.airlock", executor.Step{Script: "stat -c '%s %o' .", Shell: "/bin/sh"})
	var size, block int64
	if _, err := fmt.Sscan(out, &size, &block); err != nil || size > block {
		t.Fatalf("the next job's directory: size and block %q, want no larger than one block", out)
	}
}

// The next job's directory has the group and the times of a new one:
// not those a step set, nor the earlier job's last change.
func TestAKeptDirectoryHasANewOnesGroupAndTimes(t *testing.T) {
	e := cgroupExecutor(t)
	e.Dirs = &local.WorkDirs{}
	parent := t.TempDir()
	// Another group of the user's, or any as root.
	runIn(t, e, parent, "run_a.1.airlock", executor.Step{Shell: "/bin/sh",
		Script: `for g in $(id -G) 65534; do [ "$g" != "$(id -g)" ] && chgrp "$g" . 2>/dev/null && break; done; touch -d @1000000000 .`})
	start := time.Now().Add(-time.Second)
	out := runIn(t, e, parent, "run_b.1.airlock", executor.Step{Script: "stat -c '%g %X %Y' .", Shell: "/bin/sh"})
	var gid int
	var atime, mtime int64
	if _, err := fmt.Sscan(out, &gid, &atime, &mtime); err != nil || gid != os.Getegid() || atime < start.Unix() || mtime < start.Unix() {
		t.Fatalf("the next job's directory: group, atime and mtime %q, want %d and times since %d", out, os.Getegid(), start.Unix())
	}
}

// A server that stops removes what it kept, and keeps nothing after.
func TestCloseRemovesTheKeptDirectories(t *testing.T) {
	e, parent, _ := keptOne(t)
	e.Dirs.Close()
	if free := kept(t, parent); len(free) != 0 {
		t.Fatalf("kept %v after Close", free)
	}
	runIn(t, e, parent, "run_b.1.airlock", executor.Step{Argv: []string{"true"}})
	if free := kept(t, parent); len(free) != 0 {
		t.Fatalf("kept %v after a job that ended after Close", free)
	}
}

// A killed Airlock leaves its kept directories behind: the next start
// removes them, and nothing else.
func TestSweepRemovesOtherProcessesKeptDirectories(t *testing.T) {
	parent := t.TempDir()
	pid := os.Getpid()
	left := filepath.Join(parent, ".free-"+strconv.Itoa(pid+1)+"-3")
	other := filepath.Join(parent, ".free-"+strconv.Itoa(pid)+"0-1") // another process's, whatever is in it
	// A killed predecessor's with this PID: a restarted container's
	// Airlock is PID 1 again.
	samePID := filepath.Join(parent, ".free-"+strconv.Itoa(pid)+"-1")
	running := filepath.Join(parent, "run_a.1.airlock")
	for _, dir := range []string{left, other, samePID, running} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(other, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	(&local.WorkDirs{}).Sweep(parent)
	for dir, want := range map[string]bool{left: false, other: false, samePID: false, running: true} {
		if _, err := os.Lstat(dir); (err == nil) != want {
			t.Errorf("%s: present %v after the sweep, want %v", filepath.Base(dir), err == nil, want)
		}
	}
}

// On an SELinux host every directory has a label: one with its parent's
// label, as a new directory has, and nothing else is kept; another label
// or another attribute besides, and it is not.
func TestADirectoryWithItsParentsSELinuxLabelOnlyIsPristine(t *testing.T) {
	const label = "security.selinux"
	parent := t.TempDir()
	if err := unix.Setxattr(parent, label, []byte("system_u:object_r:var_lib_t:s0\x00"), 0); err != nil {
		testenv.Missing(t, "cannot set an SELinux label here (needs root, or SELinux and a policy that allows it): "+err.Error())
	}
	for name, c := range map[string]struct {
		label, other string
		want         bool
	}{
		"the parent's label":          {label: "system_u:object_r:var_lib_t:s0\x00", want: true},
		"another label":               {label: "system_u:object_r:tmp_t:s0\x00"},
		"the parent's label and more": {label: "system_u:object_r:var_lib_t:s0\x00", other: "user.airlock-test"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(parent, strings.ReplaceAll(name, " ", "-"))
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := unix.Setxattr(dir, label, []byte(c.label), 0); err != nil {
				t.Fatal(err)
			}
			if c.other != "" {
				if err := unix.Setxattr(dir, c.other, []byte("x"), 0); err != nil {
					t.Fatal(err)
				}
			}
			if got := local.Pristine(dir); got != c.want {
				t.Fatalf("pristine %v, want %v", got, c.want)
			}
		})
	}
}

// What a step of another job put in a kept directory and made
// unremovable (a read-only directory; as root, an immutable file) must
// not reach the job it is given to either.
func TestAKeptDirectoryThatCannotBeEmptiedIsNotServed(t *testing.T) {
	e, parent, free := keptOne(t)
	sub := filepath.Join(free, "d")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(sub, "planted"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if os.Geteuid() == 0 {
		if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, 0x10); err != nil { // FS_IMMUTABLE_FL
			testenv.Missing(t, "cannot make a file immutable here: "+err.Error())
		}
		t.Cleanup(func() { _ = unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, 0) })
	} else {
		d, err := os.Open(sub)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		if err := d.Chmod(0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Chmod(0o700) })
	}
	j, out, errb := job(t, executor.Step{Argv: []string{"ls", "-A"}})
	j.WorkDir = filepath.Join(parent, "run_b.1.airlock")
	res := e.Run(context.Background(), j)
	if out.String() != "" {
		t.Fatalf("the next job ran in a directory holding %q (%+v)\n%s", out.String(), res, errb.String())
	}
}

// What is already there under a job's own name (a step of another job
// can predict it) is not the job's directory: the job finds its own,
// empty, whether kept directories are used or not.
func TestADirectoryAlreadyUnderTheJobsNameIsNotUsed(t *testing.T) {
	for name, e := range map[string]local.Executor{"made": {}, "kept": {Dirs: &local.WorkDirs{}}} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "run_a.2.airlock")
			if err := os.MkdirAll(filepath.Join(dir, "d"), 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "planted"), []byte("x"), 0o666); err != nil {
				t.Fatal(err)
			}
			if out := runIn(t, e, parent, "run_a.2.airlock", executor.Step{Script: "stat -c %a .; ls -A", Shell: "/bin/sh"}); out != "700\n" {
				t.Fatalf("the job printed %q, want its own directory, mode 0700, empty", out)
			}
		})
	}
}

// keptOne runs one job in a directory it leaves as made, and returns
// the executor, the jobs' parent directory and the directory kept.
func keptOne(t *testing.T) (local.Executor, string, string) {
	t.Helper()
	e := cgroupExecutor(t)
	e.Dirs = &local.WorkDirs{}
	parent := t.TempDir()
	runIn(t, e, parent, "run_a.1.airlock", executor.Step{Argv: []string{"true"}})
	free := kept(t, parent)
	if len(free) != 1 {
		t.Fatalf("kept %v, want one directory", free)
	}
	return e, parent, free[0]
}

// The directories a WorkDirs keeps itself are not swept.
func TestSweepLeavesTheKeptOnes(t *testing.T) {
	e, parent, free := keptOne(t)
	e.Dirs.Sweep(parent)
	if after := kept(t, parent); len(after) != 1 || after[0] != free {
		t.Fatalf("kept %v after the sweep, want %v", after, free)
	}
}

// setFlags sets dir's inode flags (chattr), or skips the test.
func setFlags(t *testing.T, dir string, flags int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags); err != nil {
		testenv.Missing(t, "this file system takes no inode flags ("+err.Error()+")")
	}
}

// An inode flag a step set on its directory (chattr: no copy-on-write,
// compression, case folding, project inheritance, no dump, …) would
// reach the next job's files, as a default ACL would: such a directory
// is not kept. One its parent has, as a new directory has, is.
func TestADirectoryWithInodeFlagsIsNotPristine(t *testing.T) {
	const nodump = 0x40 // FS_NODUMP_FL, which its owner may set
	parent := t.TempDir()
	dir := filepath.Join(parent, "run_a.1.airlock")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	setFlags(t, dir, nodump)
	if local.Pristine(dir) {
		t.Fatal("a directory given a flag its parent has not is pristine")
	}
	setFlags(t, parent, nodump)
	if !local.Pristine(dir) {
		t.Fatal("a directory with its parent's flags is not pristine")
	}
	setFlags(t, dir, 0)
	if local.Pristine(dir) {
		t.Fatal("a directory without a flag its parent has is pristine")
	}
}
