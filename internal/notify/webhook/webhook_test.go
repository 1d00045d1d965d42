package webhook_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/notify/webhook"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestSignatureMatchesTheSpec: the signature of the Standard Webhooks
// specification's example.
func TestSignatureMatchesTheSpec(t *testing.T) {
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	got := webhook.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	for _, bad := range []string{"", "whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := webhook.ParseSecret(bad); err == nil {
			t.Errorf("secret %q accepted", bad)
		}
	}
}

// TestReceiverVerifiesWithAnotherImplementation: what Airlock posts
// verifies with Svix's library (the scheme's reference implementation),
// carries the same webhook-id on every attempt, and the answers decide
// between retry and dead letter.
func TestReceiverVerifiesWithAnotherImplementation(t *testing.T) {
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ids []string
	status := http.StatusNoContent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("verify: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil || p.Type != "run_finished" || p.Data["run_id"] != "run_1" || p.Data["title"] == nil {
			t.Errorf("payload %s: %v", body, err)
		}
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		code := status
		mu.Unlock()
		w.WriteHeader(code)
	}))
	defer srv.Close()
	key, _ := webhook.ParseSecret(secret)
	ch := webhook.New("ci", srv.URL, key, nil, nil)
	if ch.Name() != "webhook:ci" {
		t.Fatalf("name %s", ch.Name())
	}
	m := &notify.Message{ID: "ntf_1", Kind: "run_finished", Type: "run.finish", Time: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC),
		Title: "Your run finished", Data: map[string]any{"run_id": "run_1"}}
	for range 2 {
		if err := ch.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(ids, ",") != "ntf_1,ntf_1" {
		t.Fatalf("webhook-ids %v: want the message's ID on every attempt", ids)
	}
	for code, permanent := range map[int]bool{500: false, 503: false, 429: false, 408: false, 400: true, 404: true, 410: true} {
		mu.Lock()
		status = code
		mu.Unlock()
		err := ch.Send(context.Background(), m)
		if err == nil || notify.IsPermanent(err) != permanent {
			t.Errorf("answer %d: %v (permanent %v, want %v)", code, err, notify.IsPermanent(err), permanent)
		}
	}
	srv.Close()
	if err := ch.Send(context.Background(), m); err == nil || notify.IsPermanent(err) {
		t.Errorf("an endpoint that is down: %v, want an error to retry", err)
	}
	// The URL, which may carry a credential, is not in the error.
	withToken := webhook.New("ci", srv.URL+"/hook?token=s3cr3t-query", key, nil, nil)
	if err := withToken.Send(context.Background(), m); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %v shows the URL's query", err)
	}
}
