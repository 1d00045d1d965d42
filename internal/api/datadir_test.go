//go:build unix

package api_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/config"
)

// Everything Airlock writes under its data directory is the owner's
// only, whatever the umask, and a data directory others could read is
// made private at start (and the log says so): the directory holds the
// master key, the audit signing key, the database and the steps' work.
func TestDataDirectoryIsPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	var data string
	d := newDemoEnv(t, func(c *config.Config) {
		data = c.Data
		if err := os.Chmod(c.Data, 0o755); err != nil { // as an operator's mkdir leaves it
			t.Fatal(err)
		}
		c.Audit.CheckpointFile = filepath.Join(c.Data, "checkpoints.txt")
	})
	if !strings.Contains(d.logs.String(), "made the data directory private") {
		t.Errorf("the log does not say the data directory was made private:\n%s", d.logs.String())
	}
	code, out := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	if code != 201 {
		t.Fatalf("request: %d %v", code, out)
	}
	id := out["id"].(string)
	if final := d.waitRun(t, d.tok["alice"], id); final["status"] != "succeeded" {
		t.Fatalf("run: %v", final)
	}
	if !strings.Contains(d.output(t, d.tok["alice"], id), "flushed") {
		t.Fatal("the run wrote no output")
	}
	// A checkpoint signed now is appended to the file (the server's
	// background loop does the same on its schedule).
	if _, err := d.srv.AuditLog.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	var files []string
	err := filepath.WalkDir(data, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		switch perm := fi.Mode().Perm(); {
		case fi.IsDir() && perm != 0o700:
			t.Errorf("directory %s: mode %#o, want 0700", p, perm)
		case fi.Mode().IsRegular() && perm != 0o600:
			t.Errorf("file %s: mode %#o, want 0600", p, perm)
		}
		files = append(files, strings.TrimPrefix(p, data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/airlock.db", "/airlock.db-wal", "/master.key", "/audit.key", "/checkpoints.txt"} {
		if !slices.Contains(files, want) {
			t.Errorf("the data directory holds no %s (the walk checked: %v)", want, files)
		}
	}
}
