package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WorkDirs keeps the working directories of ended jobs for later jobs.
// Making a directory allocates an inode and removing it frees one, which
// on ext4 costs tens to over a hundred microseconds each; renaming a kept
// one to the next job's name costs a few. A directory is kept only when
// nothing can still use it and the job left it as it was made (see
// done). A nil *WorkDirs makes and removes every job's directory.
type WorkDirs struct {
	mu     sync.Mutex
	free   []string // kept directories, empty, named .free-PID-N beside the jobs'
	seq    int
	closed bool // Close was called: nothing more is kept
}

// maxFreeDirs bounds the kept directories. A killed Airlock leaves its
// kept directories behind (the next start removes them), as it leaves a
// running job's.
const maxFreeDirs = 16

// Sweep removes from parent the directories other Airlock processes kept
// there: a killed one leaves them behind, under its PID or this one's (a
// container's Airlock is PID 1 at every start). One a live process (a
// replica sharing the data directory) still keeps may go too; that
// process then makes a new directory for its next job.
func (d *WorkDirs) Sweep(parent string) {
	entries, _ := os.ReadDir(parent)
	d.mu.Lock()
	own := slices.Clone(d.free)
	d.mu.Unlock()
	for _, e := range entries {
		if f := filepath.Join(parent, e.Name()); strings.HasPrefix(e.Name(), ".free-") && !slices.Contains(own, f) {
			_ = os.RemoveAll(f)
		}
	}
}

// Close removes the kept directories; a job ending later has its
// directory removed, not kept.
func (d *WorkDirs) Close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	free := d.free
	d.free, d.closed = nil, true
	d.mu.Unlock()
	for _, f := range free {
		_ = os.RemoveAll(f)
	}
}

// make makes dir, the job's working directory, with mode 0700: a kept
// directory beside it renamed, when still as made, else a new one.
func (d *WorkDirs) make(dir string) error {
	if free := d.take(filepath.Dir(dir)); free != "" {
		// Checked again under its new name: while kept, a step of
		// another job (Airlock's user) could write to it or put
		// something else in its place, and nothing then ran to see it.
		// One no longer as made is removed below, as anything else
		// found under the job's name; one that is gets a new
		// directory's times, not the earlier job's.
		now := time.Now()
		if os.Rename(free, dir) != nil {
			_ = os.RemoveAll(free)
		} else if pristine(dir) && os.Chtimes(dir, now, now) == nil {
			return nil
		}
	}
	// Its parent is there but for the first job: no Stat first. What is
	// already there under the job's own name was put there by a step of
	// another job, which can predict it (a next attempt's name, say): it
	// is removed, not used; what cannot be removed (a read-only
	// directory, an immutable file) fails the job.
	err := os.Mkdir(dir, 0o700)
	switch {
	case errors.Is(err, fs.ErrExist):
		if err = os.RemoveAll(dir); err == nil {
			err = os.Mkdir(dir, 0o700)
		}
	case err != nil:
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	return nil
}

// take returns a kept directory in parent, or "".
func (d *WorkDirs) take(parent string) string {
	if d == nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.free) - 1; i >= 0; i-- {
		if filepath.Dir(d.free[i]) == parent {
			f := d.free[i]
			d.free = append(d.free[:i], d.free[i+1:]...)
			return f
		}
	}
	return ""
}

// done removes dir once its job has ended, or keeps it for a later job
// when ended says every process the job started is known to have ended
// (its steps ran in cgroups that were seen empty: none can still hold
// the directory, or write to it later) and the directory is as it was
// made (pristine: empty, mode 0700, not a link, no extended attribute
// such as a default ACL that would reach the next job's files, …).
func (d *WorkDirs) done(dir string, ended bool) {
	if d != nil && ended && pristine(dir) {
		d.mu.Lock()
		if !d.closed && len(d.free) < maxFreeDirs {
			d.seq++
			free := filepath.Join(filepath.Dir(dir), ".free-"+strconv.Itoa(os.Getpid())+"-"+strconv.Itoa(d.seq))
			if os.Rename(dir, free) == nil {
				d.free = append(d.free, free)
				d.mu.Unlock()
				return
			}
		}
		d.mu.Unlock()
	}
	_ = os.RemoveAll(dir)
}
