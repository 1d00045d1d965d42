//go:build !linux

package contain

import (
	"os/exec"
)

// Manager is a no-op outside Linux: steps are started as they are, and
// Kill kills the leader only.
type Manager struct{}

// New returns the no-op Manager.
func New(dir string, o Options) (*Manager, error) { return &Manager{}, nil }

// Cgroup is always "" outside Linux.
func (m *Manager) Cgroup() string { return "" }

// Fallback says that nothing but the leader is contained.
func (m *Manager) Fallback() string { return "containment needs Linux; only a step's leader is killed" }

// String says which containment is in use, for the log.
func (m *Manager) String() string { return "none (" + m.Fallback() + ")" }

// Close does nothing.
func (m *Manager) Close() error { return nil }

// Group is one step's leader.
type Group struct{ cmd *exec.Cmd }

// Start starts cmd; a Cancel set by exec.CommandContext becomes Group.Kill.
func (m *Manager) Start(cmd *exec.Cmd) (*Group, error) {
	g := &Group{cmd: cmd}
	if cmd.Cancel != nil {
		cmd.Cancel = g.Kill
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return g, nil
}

// Kill kills the leader.
func (g *Group) Kill() error { return g.cmd.Process.Kill() }

// Wait reaps the leader; ended is called first.
func (g *Group) Wait(ended func()) (waitErr, containErr error) {
	waitErr = g.cmd.Wait()
	if ended != nil {
		ended()
	}
	return waitErr, nil
}

// Reap does nothing outside Linux.
func Reap(dir string) (Reaped, error) { return Reaped{}, nil }
