// Package contain keeps every process a step starts where Airlock can
// kill it as a whole: during the step (cancel, timeout), when the step
// ends, and — after Airlock itself was killed (kill -9, the OOM killer) —
// when Airlock next starts.
//
// Where cgroup v2 is usable (Linux 5.7 or later, and write access to
// this process's own cgroup: root, or a systemd unit with Delegate=yes),
// a Manager makes an instance cgroup below its own,
// airlock-PID-STARTTIME, and starts each step directly inside a child
// cgroup of its own (CLONE_INTO_CGROUP: nothing the step forks can be
// outside it, however early). Killing a step writes cgroup.kill, which
// reaches every descendant, including those that called setsid or
// daemonized.
//
// Elsewhere the Manager falls back to what Airlock did before: a
// process group per step, killed whole. A process that leaves the group
// (setsid, setpgid) escapes it. See Manager.Start for how the fallback
// records its groups so that they can be killed after a crash.
//
// Each Manager records itself in a directory it is given (the server
// gives DATA/runs/.contain): one file per instance naming its owner
// process (PID, start time, boot, PID namespace, host), its instance
// cgroup and, in the fallback, the process groups of its running steps.
// With cgroups the record and the instance cgroup are made by the first
// step and kept until Close, and a step's emptied cgroup serves the next
// step (one never killed: some kernels kill whatever joins a cgroup
// killed once), so that a step costs no cgroup or record writes of its
// own. In the fallback the record exists while steps run: an idle
// instance has nothing to kill and no record; an empty directory is
// removed.
// Reap, at start-up, kills and removes the instances whose owner is
// dead, and never those of a live owner: replicas may share the data
// directory.
//
// This package imports only the standard library; it must not import
// the run, store or executor packages, which use it.
package contain

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// Options change how a Manager contains processes.
type Options struct {
	// NoCgroup makes the Manager use the process-group fallback even
	// where cgroup v2 is usable (tests; a host whose cgroups misbehave).
	NoCgroup bool
}

// Owner identifies the process that owns an instance. Together with
// Boot and PIDNS, a PID and its start time name one process: a PID taken
// again later has another start time.
type Owner struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // clock ticks after boot, /proc/PID/stat field 22
	Boot  string `json:"boot_id"`
	PIDNS string `json:"pid_ns"` // e.g. pid:[4026531836]
	Host  string `json:"host"`
}

// Leader is a fallback step's process group: its ID and the start time
// of its leader, whose PID it is.
type Leader struct {
	PGID  int    `json:"pgid"`
	Start uint64 `json:"start"`
}

// record is an instance's file in the record directory.
type record struct {
	Owner  Owner    `json:"owner"`
	Cgroup string   `json:"cgroup,omitempty"`
	Groups []Leader `json:"groups,omitempty"`
}

// Reaped is what Reap did.
type Reaped struct {
	// Instances is how many instances of dead owners were cleared.
	Instances int
	// Processes is how many of their processes were killed.
	Processes int
	// Groups is how many of their process groups (fallback) were killed.
	Groups int
	// Skipped is how many of their process groups were left alone
	// because the leader had exited or its PID now names another
	// process: what is left of such a group cannot be told apart from
	// processes that are not Airlock's.
	Skipped int
	// Live is how many instances belong to live owners (this process, a
	// replica) and were left alone.
	Live int
	// Foreign is how many instances were recorded on another host or
	// in another PID namespace, where their owner cannot be checked;
	// they were left alone.
	Foreign int
}

// instanceSeq numbers the Managers of this process: the first one's
// instance is airlock-PID-STARTTIME, later ones (tests) get a suffix.
var instanceSeq atomic.Uint64

// recordSuffix ends every record file; a temporary file being written
// ends in recordSuffix+".tmp" and is not a record.
const recordSuffix = ".json"

// writeRecord replaces path with r, atomically: a reader sees the old
// record or the new one. It is not synced: a record only matters while
// the machine is up (after a reboot nothing it names is running).
func writeRecord(path string, r record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	// Another instance removes the directory when it holds no record:
	// make it again should that happen between MkdirAll and the write.
	for range 10 {
		if err = os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			break
		}
		if err = os.WriteFile(tmp, append(b, '\n'), 0o600); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			if err = os.Rename(tmp, path); err != nil {
				os.Remove(tmp)
			}
		}
		break
	}
	if err != nil {
		return fmt.Errorf("write containment record: %w", err)
	}
	return nil
}

func readRecord(path string) (record, error) {
	var r record
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("containment record %s: %w", path, err)
	}
	return r, nil
}

// records lists the record files in dir.
func records(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), recordSuffix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}
