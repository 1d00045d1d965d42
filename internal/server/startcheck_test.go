package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestRunOfSupersededVersionRefusedAtStart: a run queued on version 1
// whose procedure gets version 2 before a worker claims it is refused at
// start, naming why — it never runs a version other than the one in
// service that it was requested for.
func TestRunOfSupersededVersionRefusedAtStart(t *testing.T) {
	d := testenv.DemoServer(t)
	ctx := context.Background()
	who := func(name string) *identity.Principal {
		u, err := d.Store.UserGetByUsername(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		gs, _ := authz.GroupsOf(ctx, d.Store, u.ID)
		return &identity.Principal{UserID: u.ID, Username: u.Username, Groups: gs}
	}
	// No worker runs yet: the run stays queued.
	r, err := d.Runs.Request(ctx, who("alice"), run.RequestParams{Procedure: "flush-cache", Environment: "staging", Params: map[string]any{"cache": "sessions"}})
	if err != nil || r.Status != store.RunQueued {
		t.Fatalf("request: %+v %v", r, err)
	}
	b, err := os.ReadFile(filepath.Join("..", "demo", "catalog", "flush-cache.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := procedure.Parse("flush-cache.yaml", append(b, []byte("  - name: again\n    script: echo again\n")...))
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Review.Propose(ctx, who("alice"), srcs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Review.Review(ctx, who("bob"), res.Version.ID, res.Version.Digest, store.ReviewApprove, "ok"); err != nil {
		t.Fatal(err)
	}
	d.Serve(t)
	var final *store.Run
	testenv.Eventually(t, "run "+r.ID+" to end", func() bool {
		final, err = d.Store.RunGet(ctx, r.ID)
		return err == nil && store.RunFinal(final.Status)
	})
	if final.Status != store.RunFailed || !strings.Contains(final.Error, "refused at start: version 1 of flush-cache is superseded") {
		t.Fatalf("the run of a superseded version: %s %q", final.Status, final.Error)
	}
}
