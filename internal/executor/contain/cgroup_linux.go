package contain

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// emptyDeadline bounds the wait for a killed cgroup to empty: SIGKILL
// takes effect at once, but a process in uninterruptible sleep (D, a
// hung NFS mount) dies only when it returns to user space.
const emptyDeadline = 10 * time.Second

// ownCgroup finds this process's cgroup v2 directory: the cgroup2 mount
// from /proc/self/mountinfo joined with the "0::" line of
// /proc/self/cgroup. On a hybrid host cgroup2 is mounted at
// /sys/fs/cgroup/unified, on a pure-v2 host at /sys/fs/cgroup. It
// returns why not when there is none.
func ownCgroup() (string, string) {
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Sprintf("cannot read /proc/self/mountinfo: %v", err)
	}
	defer mi.Close()
	var mountPoint, mountRoot string
	sc := bufio.NewScanner(mi)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if sep < 5 || sep+1 >= len(f) || f[sep+1] != "cgroup2" {
			continue
		}
		mountRoot, mountPoint = unescapeMount(f[3]), unescapeMount(f[4])
		break
	}
	if mountPoint == "" {
		return "", "no cgroup2 file system is mounted (/proc/self/mountinfo)"
	}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Sprintf("cannot read /proc/self/cgroup: %v", err)
	}
	var path string
	found := false
	for line := range strings.SplitSeq(string(cg), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			path, found = p, true
			break
		}
	}
	if !found {
		return "", "this process has no cgroup v2 path (no 0:: line in /proc/self/cgroup)"
	}
	rel, ok := strings.CutPrefix(path, mountRoot)
	if mountRoot == "/" {
		rel, ok = path, true
	}
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		return "", fmt.Sprintf("this process's cgroup %s is outside the cgroup2 mount at %s (mount root %s)", path, mountPoint, mountRoot)
	}
	dir := filepath.Join(mountPoint, rel)
	if !listsPID(dir, os.Getpid()) {
		return "", fmt.Sprintf("%s does not list this process in its cgroup.procs", dir)
	}
	return dir, ""
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func listsPID(dir string, pid int) bool {
	pids, err := cgroupProcs(dir)
	return err == nil && slices.Contains(pids, pid)
}

func cgroupProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// treeProcs lists the processes of dir and of every cgroup below it.
func treeProcs(dir string) []int {
	var all []int
	for _, d := range subtree(dir) {
		pids, _ := cgroupProcs(d)
		all = append(all, pids...)
	}
	return all
}

// subtree lists dir and the cgroups below it, deepest first, the order
// they can be removed in.
func subtree(dir string) []string {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	return dirs
}

// reusable reports whether an emptied step cgroup can take the next
// step as it is: no cgroups below it, not frozen. frozen is what
// cgroup.events said once the cgroup was empty, if known: an empty
// cgroup is frozen exactly when its freezing was asked for, and no
// process is left to ask or to undo it.
func reusable(dir string, frozen *bool) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.stat"))
	if err != nil || !strings.Contains(string(b), "nr_descendants 0\n") {
		return false
	}
	if frozen != nil {
		return !*frozen
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup.freeze")); err == nil && strings.TrimSpace(string(b)) != "0" {
		return false
	}
	return true
}

// writeFile writes an existing cgroup interface file: never O_CREAT, so
// that a kernel without the file answers ENOENT.
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	return errors.Join(err, f.Close())
}

// killCgroup kills every process in dir and below: cgroup.kill where the
// kernel has it (5.14), which no fork can race; else freeze the cgroup,
// SIGKILL every process listed, and repeat until none is left.
func killCgroup(dir string) error {
	err := writeFile(filepath.Join(dir, "cgroup.kill"), "1")
	if err == nil || errors.Is(err, fs.ErrNotExist) && !exists(dir) {
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kill cgroup %s: %w", dir, err)
	}
	freeze := filepath.Join(dir, "cgroup.freeze")
	if err := writeFile(freeze, "1"); err != nil && exists(dir) {
		return fmt.Errorf("freeze cgroup %s: %w", dir, err)
	}
	// A frozen process cannot fork; a fatal signal still ends it.
	defer writeFile(freeze, "0")
	deadline := time.Now().Add(emptyDeadline)
	for {
		pids := treeProcs(dir)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kill cgroup %s: processes %v still listed after %v", dir, pids, emptyDeadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// populated reads cgroup.events: whether a live process is in dir or
// below. A cgroup that is gone is not populated.
func populated(dir string) (bool, error) {
	pop, _, err := events(dir)
	return pop, err
}

// events reads cgroup.events: whether the cgroup (or one below it) holds
// a process, and whether it is frozen. A cgroup that is gone holds
// nothing.
func events(dir string) (populated, frozen bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	seen := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "populated "); ok {
			populated, seen = v != "0", true
		} else if v, ok := strings.CutPrefix(line, "frozen "); ok {
			frozen = v != "0"
		}
	}
	if !seen {
		return false, false, fmt.Errorf("%s/cgroup.events: no populated line", dir)
	}
	return populated, frozen, nil
}

// waitEmpty waits, for at most emptyDeadline, until cgroup.events says
// the cgroup holds no process.
func waitEmpty(dir string) error {
	deadline := time.Now().Add(emptyDeadline)
	for {
		pop, err := populated(dir)
		if err != nil {
			return err
		}
		if !pop {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still holds processes %v %v after they were killed", dir, treeProcs(dir), emptyDeadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// removeCgroup kills everything in dir and below, waits until it is
// empty, and removes it and the cgroups below it. It returns how many
// processes were listed when it began. A cgroup that is already gone is
// not an error.
func removeCgroup(dir string) (int, error) {
	if !exists(dir) {
		return 0, nil
	}
	n := len(treeProcs(dir))
	if err := killCgroup(dir); err != nil {
		return n, err
	}
	if err := waitEmpty(dir); err != nil {
		return n, err
	}
	for _, d := range subtree(dir) {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("remove cgroup %s: %w", d, err)
		}
	}
	return n, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// probe checks that a process can be started inside a cgroup below dir
// (CLONE_INTO_CGROUP, Linux 5.7) and that the cgroup can be killed as a
// whole (cgroup.kill, Linux 5.14, or cgroup.freeze, 5.2). It returns why
// not.
func probe(dir string) string {
	p := filepath.Join(dir, "probe")
	if err := os.Mkdir(p, 0o755); err != nil {
		return err.Error()
	}
	defer removeCgroup(p)
	if !exists(filepath.Join(p, "cgroup.kill")) && !exists(filepath.Join(p, "cgroup.freeze")) {
		return fmt.Sprintf("%s has neither cgroup.kill nor cgroup.freeze (Linux 5.2 or later is needed)", p)
	}
	var prog string
	for _, c := range []string{"/bin/true", "/usr/bin/true"} {
		if exists(c) {
			prog = c
			break
		}
	}
	if prog == "" {
		return "" // nothing to start; the first step will tell
	}
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Sprintf("open %s: %v", p, err)
	}
	defer syscall.Close(fd)
	cmd := exec.Command(prog)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("cannot start a process inside %s: %v (CLONE_INTO_CGROUP needs Linux 5.7)", p, err)
	}
	return ""
}
