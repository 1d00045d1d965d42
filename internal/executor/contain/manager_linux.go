package contain

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
)

// Manager contains the processes of the steps this Airlock process
// runs. A nil *Manager is usable: each step gets a process group of its
// own, killed whole, and a parent-death signal, and nothing is recorded
// (what local.Executor{} did before this package).
type Manager struct {
	dir    string // the record directory
	record string // this instance's file in it
	owner  Owner
	cgroup string // the instance cgroup; "" in the fallback
	why    string // why the fallback is in use
	seq    atomic.Uint64

	mu     sync.Mutex
	groups map[*Group]struct{} // steps started and not yet waited for
	closed bool
	new    bool // New is probing: the record is written though no step runs
	// made: the instance cgroup exists (from the first step to Close),
	// with its record. free holds emptied step cgroups for the next
	// steps: a cgroup is made and removed once, not per step.
	made bool
	free []string
}

// maxFree bounds the emptied step cgroups kept for reuse.
const maxFree = 16

// New makes the containment of this process: cgroups when cgroup v2 is
// usable (it tries: it creates the instance cgroup and starts a probe
// process inside a cgroup below it), else the process-group fallback;
// Fallback says which, and why. The instance cgroup, and the instance's
// record in dir, are made by the first step and kept until Close (a
// crash leaves the record, which names the cgroup: Reap empties it);
// in the fallback the record exists while steps run. New fails only
// when dir cannot be written or /proc cannot be read.
func New(dir string, o Options) (*Manager, error) {
	me, err := self()
	if err != nil {
		return nil, fmt.Errorf("contain: identify this process: %w", err)
	}
	name := instanceName(me, instanceSeq.Add(1))
	m := &Manager{dir: dir, record: filepath.Join(dir, name+recordSuffix), owner: me, groups: map[*Group]struct{}{}, new: true}
	// Written first, to know that it can be.
	if err := m.save(); err != nil {
		return nil, err
	}
	switch base, why := ownCgroup(); {
	case o.NoCgroup:
		m.why = "cgroups disabled by the caller (Options.NoCgroup)"
	case why != "":
		m.why = why
	default:
		m.cgroup = filepath.Join(base, name)
		// Recorded before it is made: a crash in between leaves a record
		// of nothing, never a cgroup no record names.
		if err := m.save(); err != nil {
			return nil, err
		}
		if err := os.Mkdir(m.cgroup, 0o755); err != nil {
			m.why = fmt.Sprintf("%v (Airlock needs write access to its own cgroup: run it as root, or in a systemd unit with Delegate=yes)", err)
			m.cgroup = ""
		} else {
			if why := probe(m.cgroup); why != "" {
				m.why = why
			}
			// Made again by the next step: an idle Airlock (or a test's
			// server, never closed) leaves no cgroup behind.
			if _, err := removeCgroup(m.cgroup); err != nil && m.why == "" {
				m.why = err.Error()
			}
			if m.why != "" {
				m.cgroup = ""
			}
		}
	}
	m.new = false
	if err := m.save(); err != nil {
		return nil, err
	}
	return m, nil
}

// Cgroup is the instance cgroup, or "" when the fallback is in use.
func (m *Manager) Cgroup() string {
	if m == nil {
		return ""
	}
	return m.cgroup
}

// Fallback is why the process-group fallback is in use, or "" when
// steps run in cgroups.
func (m *Manager) Fallback() string {
	switch {
	case m == nil:
		return "no containment manager"
	case m.cgroup == "":
		return m.why
	}
	return ""
}

// String says which containment is in use, for the log.
func (m *Manager) String() string {
	if c := m.Cgroup(); c != "" {
		return "cgroup v2 " + c
	}
	return "process groups (" + m.Fallback() + ")"
}

// save writes the instance's record — its owner, its cgroup and, in the
// fallback, the process groups of its running steps — while it has
// steps running or its instance cgroup exists, which a crash would
// leave. Otherwise it removes the record, and the record directory when
// no other instance has one there.
func (m *Manager) save() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saveLocked()
}

func (m *Manager) saveLocked() error {
	if m.closed {
		return nil
	}
	if len(m.groups) == 0 && !m.new && !m.made {
		err := os.Remove(m.record)
		_ = os.Remove(m.dir) // fails unless empty
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	r := record{Owner: m.owner, Cgroup: m.cgroup}
	for g := range m.groups {
		if g.leader.PGID != 0 {
			r.Groups = append(r.Groups, g.leader)
		}
	}
	slices.SortFunc(r.Groups, func(a, b Leader) int { return a.PGID - b.PGID })
	return writeRecord(m.record, r)
}

// Group is one step's processes.
type Group struct {
	m      *Manager
	cmd    *exec.Cmd
	cgroup string // the step's cgroup; "" in the fallback
	leader Leader // recorded (fallback with a Manager)

	mu      sync.Mutex
	pid     int  // the leader's, once started
	reaping bool // the leader is being reaped: its PID may be free
	// killed: cgroup.kill was written; on some kernels a cgroup killed
	// once kills every process that joins it later, so it is not reused.
	killed bool
	// emptied: the cgroup was seen empty after the step started, with
	// frozen as cgroup.events said then. It stays empty: a process joins
	// a cgroup by a fork of one inside, or by a write to cgroup.procs,
	// which Airlock does not make.
	emptied, frozen bool
}

// Start starts cmd contained. When cmd was made by exec.CommandContext,
// Start replaces its Cancel with Group.Kill: a cancelled context kills
// the whole step, not only its leader. It sets
// cmd.SysProcAttr's Setpgid (every step leads a process group) and:
//
//   - with cgroup v2, UseCgroupFD and CgroupFD: the step starts inside a
//     new cgroup of its own, and Pdeathsig SIGKILL, so that its leader
//     dies at once with Airlock (the rest is killed at the next start);
//   - in the fallback, no Pdeathsig: the leader's PGID and start time are
//     recorded, and Reap kills the group only while that leader lives
//     (the PGID is then certainly still its group). Were the leader to
//     die with Airlock, what it left would be a group without a leader,
//     which cannot be told apart from a later group that took its PID;
//   - with a nil Manager, Pdeathsig SIGKILL and nothing recorded.
//
// Call Wait once Start succeeded, and do not call cmd.Wait.
func (m *Manager) Start(cmd *exec.Cmd) (*Group, error) {
	g := &Group{m: m, cmd: cmd}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	a := cmd.SysProcAttr
	a.Setpgid, a.Pgid, a.Pdeathsig = true, 0, syscall.SIGKILL
	if cmd.Cancel != nil { // made by exec.CommandContext
		cmd.Cancel = g.Kill
	}
	if m != nil {
		if m.cgroup == "" {
			a.Pdeathsig = 0
		}
		fd, err := m.add(g)
		if err != nil {
			return nil, err
		}
		if fd >= 0 {
			defer syscall.Close(fd)
			a.UseCgroupFD, a.CgroupFD = true, fd
		}
	}
	if err := cmd.Start(); err != nil {
		_ = g.release()
		return nil, err
	}
	g.mu.Lock()
	g.pid = cmd.Process.Pid
	g.mu.Unlock()
	if m != nil && g.cgroup == "" {
		st, err := readStat(cmd.Process.Pid) // our unreaped child: its PID is its own
		if err == nil {
			m.mu.Lock()
			g.leader = Leader{PGID: cmd.Process.Pid, Start: st.start}
			err = m.saveLocked()
			m.mu.Unlock()
		}
		if err != nil {
			_ = g.Kill()
			_, _ = g.Wait(nil)
			return nil, fmt.Errorf("contain: record process group %d: %w", cmd.Process.Pid, err)
		}
	}
	return g, nil
}

// add registers g and, with cgroups, makes its cgroup (and the
// instance's, for the first step) and returns it open for
// CLONE_INTO_CGROUP; else -1.
func (m *Manager) add(g *Group) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return -1, errors.New("contain: the manager is closed")
	}
	if m.cgroup == "" {
		m.groups[g] = struct{}{}
		return -1, nil
	}
	m.groups[g] = struct{}{}
	fail := func(err error) (int, error) {
		delete(m.groups, g)
		m.removeInstanceLocked()
		return -1, errors.Join(fmt.Errorf("contain: %w", err), m.saveLocked())
	}
	if !m.made {
		// Recorded before the instance cgroup is made: a crash in
		// between leaves a record of nothing, never a cgroup no record
		// names.
		m.made = true
		if err := m.saveLocked(); err != nil {
			m.made = false
			return fail(err)
		}
		if err := os.Mkdir(m.cgroup, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			m.made = false
			return fail(err)
		}
	}
	if n := len(m.free); n > 0 {
		g.cgroup, m.free = m.free[n-1], m.free[:n-1]
	} else {
		g.cgroup = filepath.Join(m.cgroup, "step-"+strconv.FormatUint(m.seq.Add(1), 10))
		if err := os.Mkdir(g.cgroup, 0o755); err != nil {
			g.cgroup = ""
			return fail(err)
		}
	}
	fd, err := syscall.Open(g.cgroup, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		_ = syscall.Rmdir(g.cgroup)
		return fail(err)
	}
	return fd, nil
}

// removeInstanceLocked removes the instance cgroup when no step is
// running, after a step could not be started in it: kept idle step
// cgroups are removed first, so that it is empty.
func (m *Manager) removeInstanceLocked() {
	if len(m.groups) == 0 && m.cgroup != "" && m.made {
		for _, c := range m.free {
			_ = syscall.Rmdir(c)
		}
		m.free = nil
		if err := syscall.Rmdir(m.cgroup); err == nil || errors.Is(err, fs.ErrNotExist) {
			m.made = false
		}
	}
}

// Kill kills every process of the step: its cgroup, or its process
// group. It is cmd.Cancel. After Wait began reaping the leader it does
// nothing (Wait has killed everything already) and returns
// os.ErrProcessDone.
func (g *Group) Kill() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reaping || g.pid == 0 {
		return os.ErrProcessDone
	}
	return g.kill()
}

func (g *Group) kill() error {
	if g.cgroup != "" {
		if g.emptied {
			return nil
		}
		if pop, frozen, err := events(g.cgroup); err == nil && !pop {
			g.emptied, g.frozen = g.pid != 0, frozen
			return nil // nothing left to kill
		}
		g.killed = true
		return killCgroup(g.cgroup)
	}
	// The leader is not reaped yet, so its PID is still the group's.
	if err := syscall.Kill(-g.pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("kill process group %d: %w", g.pid, err)
	}
	return nil
}

// Wait waits for the step's leader (cmd's process) to exit, then calls
// ended (when not nil) while the leader is still unreaped, then kills
// whatever the step left running, reaps the leader (cmd.Wait), and
// removes the step's cgroup and record. waitErr is cmd.Wait's error;
// containErr says what could not be killed or removed.
func (g *Group) Wait(ended func()) (waitErr, containErr error) {
	var errs []error
	if err := waitExited(g.cmd.Process.Pid); err != nil {
		errs = append(errs, err)
	}
	if ended != nil {
		ended()
	}
	g.mu.Lock()
	errs = append(errs, g.kill())
	g.reaping = true
	g.mu.Unlock()
	waitErr = g.cmd.Wait()
	errs = append(errs, g.release())
	return waitErr, errors.Join(errs...)
}

// release removes the step's cgroup, killing what is left in it, and
// forgets the step.
func (g *Group) release() error {
	var err error
	reuse := false
	if g.cgroup != "" {
		// Emptied, a step's cgroup serves the next step: made and
		// removed once rather than per step. One the step made cgroups
		// below, or left frozen, is removed instead.
		g.mu.Lock()
		err = g.kill()
		killed, emptied, frozen := g.killed, g.emptied, g.frozen
		g.mu.Unlock()
		var known *bool
		switch {
		case emptied:
			known = &frozen
		case err == nil:
			err = waitEmpty(g.cgroup)
		}
		reuse = err == nil && !killed && reusable(g.cgroup, known)
	}
	if g.m == nil {
		return err
	}
	g.m.mu.Lock()
	defer g.m.mu.Unlock()
	delete(g.m.groups, g)
	if err != nil {
		return err // the record stays: the next start tries again
	}
	if g.cgroup == "" {
		return g.m.saveLocked() // the fallback's record, without this group
	}
	if reuse && !g.m.closed && len(g.m.free) < maxFree {
		g.m.free = append(g.m.free, g.cgroup)
		return nil
	}
	_, err = removeCgroup(g.cgroup)
	return err
}

// Close kills every step still running, removes the instance cgroup and
// the instance's record. Steps started later fail to start. It may be
// called more than once.
func (m *Manager) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	groups := slices.Collect(maps.Keys(m.groups))
	m.mu.Unlock()
	var errs []error
	for _, g := range groups {
		if err := g.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, err)
		}
	}
	if m.cgroup != "" {
		if _, err := removeCgroup(m.cgroup); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(m.record); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	_ = os.Remove(m.dir) // fails unless empty
	return errors.Join(errs...)
}

// Reap kills and removes the instances recorded in dir whose owner
// process is dead (its PID is gone, or names a process that started at
// another time): everything in their cgroups, and each of their
// fallback process groups whose leader still runs with the recorded
// start time. It leaves alone the instances of live owners (this
// process, a replica sharing the data directory) and those recorded on
// another host or in another PID namespace. A record is removed once
// what it names is gone; one that could not be cleared is kept for the
// next start, and the error says why.
func Reap(dir string) (Reaped, error) {
	var r Reaped
	me, err := self()
	if err != nil {
		return r, fmt.Errorf("contain: identify this process: %w", err)
	}
	paths, err := records(dir)
	if err != nil {
		return r, fmt.Errorf("contain: %w", err)
	}
	var errs []error
	for _, p := range paths {
		rec, err := readRecord(p)
		if errors.Is(err, fs.ErrNotExist) { // its owner closed it meanwhile
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o := rec.Owner
		switch {
		case o.Boot != me.Boot && o.Host == me.Host:
			// This host has booted since: nothing the record names runs,
			// and its PIDs and cgroups are not its processes.
		case o.Boot != me.Boot || o.PIDNS != me.PIDNS:
			r.Foreign++
			continue
		case running(o.PID, o.Start):
			r.Live++
			continue
		default:
			if err := reapInstance(rec, &r); err != nil {
				errs = append(errs, fmt.Errorf("contain: %s: %w", p, err))
				continue
			}
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		r.Instances++
	}
	_ = os.Remove(dir) // fails unless empty
	return r, errors.Join(errs...)
}

func reapInstance(rec record, r *Reaped) error {
	if rec.Cgroup != "" && exists(rec.Cgroup) {
		if !validInstance(rec.Cgroup) {
			return fmt.Errorf("%s is not an Airlock instance cgroup on a cgroup2 file system; left alone", rec.Cgroup)
		}
		n, err := removeCgroup(rec.Cgroup)
		r.Processes += n
		if err != nil {
			return err
		}
	}
	for _, l := range rec.Groups {
		// The leader, alive or a zombie, holds its PID and with it the
		// group's ID: while it has the recorded start time, the group
		// is the step's. Otherwise its PID may name anything now.
		st, err := readStat(l.PGID)
		if err != nil || st.start != l.Start {
			r.Skipped++
			continue
		}
		members := groupMembers(l.PGID)
		if err := syscall.Kill(-l.PGID, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("kill process group %d: %w", l.PGID, err)
		}
		r.Groups++
		r.Processes += len(members)
	}
	return nil
}
