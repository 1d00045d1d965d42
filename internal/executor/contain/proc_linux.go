package contain

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// procStat is what Airlock reads of /proc/PID/stat.
type procStat struct {
	state byte
	pgrp  int
	start uint64 // clock ticks after boot (field 22)
}

// readStat reads /proc/PID/stat. The command name (field 2) may hold
// spaces and parentheses, so the fields are counted from the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	pgrp, err1 := strconv.Atoi(f[2])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, nil
}

// running reports whether pid is a live process (not a zombie) that
// started at start: the same process, not one that reused its PID.
func running(pid int, start uint64) bool {
	st, err := readStat(pid)
	return err == nil && st.start == start && st.state != 'Z' && st.state != 'X'
}

// self identifies this process: its PID, start time, boot, PID
// namespace and host.
func self() (Owner, error) {
	pid := os.Getpid()
	st, err := readStat(pid)
	if err != nil {
		return Owner{}, err
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return Owner{}, err
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return Owner{}, err
	}
	host, _ := os.Hostname()
	return Owner{PID: pid, Start: st.start, Boot: strings.TrimSpace(string(boot)), PIDNS: ns, Host: host}, nil
}

// groupMembers lists the live processes whose process group is pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitExited blocks until the child pid has exited, and leaves it
// unreaped (WNOWAIT) for os/exec's Wait: until then its PID, which is
// its process group's ID, cannot be taken by another process.
func waitExited(pid int) error {
	const pPID = 1     // P_PID
	var info [128]byte // siginfo_t
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info[0])),
			syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return fmt.Errorf("waitid %d: %w", pid, e)
		}
		return nil
	}
}

// isCgroup2 reports whether dir is on a cgroup v2 file system.
func isCgroup2(dir string) bool {
	const cgroup2Magic = 0x63677270
	var fs syscall.Statfs_t
	return syscall.Statfs(dir, &fs) == nil && fs.Type == cgroup2Magic
}

// instanceName is the cgroup directory and record name of an instance.
func instanceName(o Owner, n uint64) string {
	name := fmt.Sprintf("airlock-%d-%d", o.PID, o.Start)
	if n > 1 {
		name += "-" + strconv.FormatUint(n, 10)
	}
	return name
}

// validInstance reports whether a recorded cgroup path can be one this
// package made: an airlock-… directory on a cgroup v2 file system. A
// record that names anything else is not acted on.
func validInstance(path string) bool {
	return filepath.IsAbs(path) && strings.HasPrefix(filepath.Base(path), "airlock-") && isCgroup2(filepath.Dir(path))
}
