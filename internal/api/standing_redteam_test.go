package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// person inserts a person in groups who signs in with password pw, and
// returns their API token.
func (e *trgEnv) person(name, pw string, groups ...string) string {
	e.t.Helper()
	ctx := context.Background()
	now := e.clock.Now()
	u := &store.User{ID: airlock.NewID(airlock.PrefixUser, now), Username: name, Kind: store.AccountPerson,
		PasswordHash: identity.HashPassword(pw), CreatedAt: now, UpdatedAt: now}
	err := e.d.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.UserInsert(ctx, u); err != nil {
			return err
		}
		for _, name := range groups {
			g, err := tx.GroupGetByName(ctx, name)
			if err != nil {
				return err
			}
			if err := tx.GroupMemberAdd(ctx, &store.GroupMember{GroupID: g.ID, UserID: u.ID, Source: store.MemberManual, CreatedAt: now}); err != nil {
				return err
			}
		}
		return tx.AuditAppend(ctx, audit.New(ctx, now, audit.UserCreate, audit.System, u.ID, audit.Success, map[string]any{"username": name}))
	})
	if err != nil {
		e.t.Fatal(err)
	}
	code, out := e.call("POST", "/api/v1/auth/token", "", api.LoginRequest{Username: name, Password: pw}, nil)
	if code != 201 {
		e.t.Fatalf("login %s: %d %v", name, code, out)
	}
	e.tok[name] = out["token"].(string)
	return e.tok[name]
}

// TestTriggerRunApprovalExcludesItsProposer: whoever proposed a trigger
// was shown its secret, and so can make it request any run its mapping
// allows. Where such a run needs an approval, the proposer does not give
// it (nor is told to): they asked for the run as surely as its service
// account did. Someone else may.
func TestTriggerRunApprovalExcludesItsProposer(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			e := newTrgEnv(t, driver)
			ctx := context.Background()
			olga := e.person("olga", "olga-has-a-long-password-1", "ops")
			// bob (ops, admin: he may use any service account) proposes a
			// trigger that restarts a service in production, where each
			// run needs an approval; olga approves the trigger.
			code, out := e.call("POST", "/api/v1/triggers", e.tok["bob"], api.TriggerRequest{Name: "restart-prod", Procedure: "restart-service",
				Environment: "production", Account: "am-bot", Mapping: map[string]string{"service": "$.service", "ticket": "$.ticket"}}, nil)
			if code != 201 {
				t.Fatalf("propose: %d %v", code, out)
			}
			binding, secret := out["trigger"].(map[string]any)["binding"].(string), out["secret"].(string)
			if code, out := e.call("POST", "/api/v1/triggers/restart-prod/approve", olga, api.DecisionRequest{Binding: binding, Comment: "ok"}, nil); code != 200 {
				t.Fatalf("olga approves the trigger: %d %v", code, out)
			}
			// bob signs a delivery of his own with the secret he was shown.
			body, _ := json.Marshal(map[string]any{"service": "api", "ticket": "OPS-9"})
			code, out = e.signed("restart-prod", secret, "bobs-own", body, 0)
			items, _ := out["items"].([]any)
			if code != 202 || len(items) != 1 || items[0].(map[string]any)["outcome"] != "requested" {
				t.Fatalf("delivery: %d %v", code, out)
			}
			runID := items[0].(map[string]any)["run_id"].(string)
			r, err := e.d.Store.RunGet(ctx, runID)
			if err != nil {
				t.Fatal(err)
			}
			approvers, err := e.d.Runs.Approvers(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range approvers {
				if a == "bob" {
					t.Errorf("the trigger's proposer is among those asked to approve its run: %v", approvers)
				}
			}
			code, out = e.call("POST", "/api/v1/runs/"+runID+"/approve", e.tok["bob"], api.DecisionRequest{Binding: r.Binding, Comment: "fine"}, nil)
			if code != 403 {
				t.Fatalf("the trigger's proposer approves the run it requested: %d %v", code, out)
			}
			if code, out := e.call("POST", "/api/v1/runs/"+runID+"/approve", olga, api.DecisionRequest{Binding: r.Binding, Comment: "fine"}, nil); code != 200 || out["status"] != store.RunQueued {
				t.Fatalf("another approves: %d %v", code, out)
			}
		})
	}
}

// TestTriggerRateHoldsUnderConcurrentDeliveries: deliveries that arrive
// at once (an alert storm: Alertmanager posts each alert group on its
// own) start no more runs than the trigger's rate allows in a minute.
func TestTriggerRateHoldsUnderConcurrentDeliveries(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			e := newTrgEnv(t, driver)
			const rate, senders = 2, 16
			binding, secret := e.propose(api.TriggerRequest{Name: "flush-storm", Procedure: "flush-cache", Environment: "staging",
				Account: "am-bot", Auth: "bearer", DedupKey: "$.id", Mapping: map[string]string{"cache": "$.cache"}, RatePerMinute: rate})
			e.approve("flush-storm", binding)
			st, err := e.d.Store.StandingGetByName(context.Background(), store.StandingTrigger, "flush-storm")
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			codes := make([]int, senders)
			for i := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("alert-%d", i), "cache": "sessions"})
					req, _ := http.NewRequest("POST", e.url+"/api/v1/hooks/flush-storm", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+secret)
					resp, err := client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					codes[i] = resp.StatusCode
				}()
			}
			wg.Wait()
			if n := len(e.runsOf(st.ID)); n > rate {
				t.Fatalf("%d concurrent deliveries started %d runs; the trigger's rate is %d a minute (answers %v)", senders, n, rate, codes)
			}
		})
	}
}
