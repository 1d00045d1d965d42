package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestAKeyedRepeatIsNotRefusedOnTheCatalog: a request repeated with its
// Idempotency-Key returns the run the first made, whatever else it
// carries — as it did when the key was looked up before anything else.
// Planned on the catalog, the key is looked up only in the write
// transaction: a check made before it (here the reason's length) must
// not answer for the store, which looks the key up first.
func TestAKeyedRepeatIsNotRefusedOnTheCatalog(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			d := testenv.DemoServer(t, testenv.UseDriver(t, driver))
			ctx := context.Background()
			approveSource(t, d, "speak.yaml", speakProc)
			d.Serve(t)
			alice := principal(t, d, "alice")
			request := func(key, reason string) (string, error) {
				r, err := d.Runs.Request(ctx, alice, run.RequestParams{Procedure: "speak", Environment: "staging",
					Params: map[string]any{"bytes": 1}, IdempotencyKey: key, Reason: reason})
				if err != nil {
					return "", err
				}
				return r.ID, nil
			}
			first, err := request("one", "deploy") // on the store; fills the catalog
			if err != nil {
				t.Fatal(err)
			}
			long := strings.Repeat("the retry says more. ", 100) // over 2000 characters
			again, err := request("one", long)                   // on the catalog
			if err != nil || again != first {
				t.Fatalf("the request repeated with its key (a longer reason, planned on the catalog): run %q, %v; want run %s", again, err, first)
			}
		})
	}
}
