package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestAStoppedServerLeavesNothingOfItsSteps: between runs a server keeps
// its local steps' instance cgroup (with emptied step cgroups), its
// containment record and emptied working directories; once it stops,
// none is left — a server that stopped cleanly, run after run, used to
// leave a cgroup behind each time.
func TestAStoppedServerLeavesNothingOfItsSteps(t *testing.T) {
	d := testenv.DemoServer(t)
	approveSource(t, d, "speak.yaml", speakProc)
	d.Serve(t)
	a, err := d.Runs.RequestAndAwait(context.Background(), principal(t, d, "alice"), run.RequestParams{Procedure: "speak",
		Environment: "staging", Params: map[string]any{"bytes": 1}}, time.Minute, 10)
	if err != nil || !a.Ended || a.Run.Status != store.RunSucceeded {
		t.Fatalf("run: %v %+v", err, a.Run)
	}
	runs := filepath.Join(d.Config.Data, "runs")
	records, _ := filepath.Glob(filepath.Join(runs, ".contain", "*.json"))
	if len(records) != 1 {
		t.Fatalf("containment records %v while the server runs, want one", records)
	}
	b, err := os.ReadFile(records[0])
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Cgroup string `json:"cgroup"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Cgroup == "" {
		testenv.Missing(t, "local steps run in process groups here, not cgroups: nothing is kept between runs")
	}
	if _, err := os.Stat(rec.Cgroup); err != nil {
		t.Fatalf("the instance cgroup while the server runs: %v", err)
	}
	if kept, _ := filepath.Glob(filepath.Join(runs, ".free-*")); len(kept) == 0 {
		t.Fatal("no working directory kept between runs")
	}

	if err := d.Server.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rec.Cgroup); !os.IsNotExist(err) {
		t.Errorf("the instance cgroup %s after the server stopped: %v", rec.Cgroup, err)
	}
	left, _ := filepath.Glob(filepath.Join(runs, ".contain", "*"))
	kept, _ := filepath.Glob(filepath.Join(runs, ".free-*"))
	if len(left)+len(kept) > 0 {
		t.Errorf("left after the server stopped: records %v, working directories %v", left, kept)
	}
}
