package teams_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/notify/teams"
)

// receiver is an incoming webhook that records what it is sent.
type receiver struct {
	mu     sync.Mutex
	bodies []map[string]any
	types  []string
	status int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	var v map[string]any
	json.Unmarshal(b, &v)
	r.mu.Lock()
	r.bodies, r.types = append(r.bodies, v), append(r.types, req.Header.Get("Content-Type"))
	status := r.status
	r.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
		w.Write([]byte("refused"))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func message() *notify.Message {
	return &notify.Message{Title: "alice asks to run flush-cache in production", Text: "It waits for your approval.",
		Fields:  []notify.Field{{Label: "Procedure", Value: "flush-cache"}, {Label: "Environment", Value: "production"}},
		Link:    "https://airlock.example/runs/run_1",
		Actions: []notify.Action{{Name: "approve", Label: "Approve", Value: "run_1 sha256:ab"}}}
}

// TestAdaptiveCard: the webhook receives a message with one Adaptive
// Card: the title, the facts, and a button that opens the run; no
// approve button (approval from Teams is not offered).
func TestAdaptiveCard(t *testing.T) {
	rec := &receiver{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	ch := teams.New("ops", srv.URL+"/webhook/secret-part", nil)
	if ch.Name() != "teams:ops" {
		t.Fatalf("name %q", ch.Name())
	}
	if err := ch.Send(context.Background(), message()); err != nil {
		t.Fatal(err)
	}
	if len(rec.bodies) != 1 || rec.types[0] != "application/json" {
		t.Fatalf("received %d, %v", len(rec.bodies), rec.types)
	}
	b := rec.bodies[0]
	att := b["attachments"].([]any)[0].(map[string]any)
	if b["type"] != "message" || att["contentType"] != "application/vnd.microsoft.card.adaptive" {
		t.Fatalf("envelope: %v", b)
	}
	card := att["content"].(map[string]any)
	body := card["body"].([]any)
	if card["type"] != "AdaptiveCard" || body[0].(map[string]any)["text"] != message().Title {
		t.Fatalf("card: %v", card)
	}
	var facts []any
	for _, el := range body {
		if el.(map[string]any)["type"] == "FactSet" {
			facts = el.(map[string]any)["facts"].([]any)
		}
	}
	if len(facts) != 2 || facts[1].(map[string]any)["title"] != "Environment" || facts[1].(map[string]any)["value"] != "production" {
		t.Fatalf("facts: %v", facts)
	}
	actions := card["actions"].([]any)
	if len(actions) != 1 || actions[0].(map[string]any)["type"] != "Action.OpenUrl" || actions[0].(map[string]any)["url"] != message().Link {
		t.Fatalf("actions: %v", actions)
	}
	if raw, _ := json.Marshal(b); strings.Contains(string(raw), "sha256:ab") {
		t.Fatal("the card carries the approval binding, though Teams cannot approve")
	}
}

// TestTeamsErrors: a 4xx refusal is permanent (but 429), a 5xx is
// retried, and the webhook URL — a credential — is in no error.
func TestTeamsErrors(t *testing.T) {
	for _, c := range []struct {
		status    int
		permanent bool
	}{{400, true}, {403, true}, {404, true}, {429, false}, {500, false}, {503, false}} {
		rec := &receiver{status: c.status}
		srv := httptest.NewServer(rec)
		err := teams.New("ops", srv.URL+"/webhook/secret-part", nil).Send(context.Background(), message())
		srv.Close()
		if err == nil || notify.IsPermanent(err) != c.permanent {
			t.Errorf("%d: %v, permanent %v, want %v", c.status, err, notify.IsPermanent(err), c.permanent)
		}
	}
	srv := httptest.NewServer(&receiver{})
	url := srv.URL + "/webhook/secret-part"
	srv.Close() // nothing listens now
	err := teams.New("ops", url, nil).Send(context.Background(), message())
	if err == nil || notify.IsPermanent(err) || strings.Contains(err.Error(), "secret-part") {
		t.Fatalf("unreachable webhook: %v", err)
	}
}
