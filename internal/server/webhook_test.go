package server

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWebhookRetries: a receiver that fails twice gets the note on the
// third attempt; one that never answers 2xx is given up on after the
// configured attempts, and that is logged.
func TestWebhookRetries(t *testing.T) {
	var calls atomic.Int32
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		got.Store(string(b))
	}))
	defer srv.Close()
	w := &webhook{URL: srv.URL, Backoff: 5 * time.Millisecond}
	w.Publish("airlock\n3\nroot\n")
	w.Wait()
	if calls.Load() != 3 || got.Load() != "airlock\n3\nroot\n" {
		t.Fatalf("%d calls, got %v", calls.Load(), got.Load())
	}

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer down.Close()
	var logs bytes.Buffer
	w = &webhook{URL: down.URL, Attempts: 3, Backoff: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	w.Publish("note")
	w.Wait()
	if !strings.Contains(logs.String(), "giving up") || !strings.Contains(logs.String(), "attempts=3") {
		t.Fatalf("log: %s", logs.String())
	}
}
