package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/server"
)

// TestGracefulShutdownFinishesInFlight starts a request, stops the server
// while the request body is still arriving, and expects the request to be
// answered and Serve to return cleanly.
func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()

	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"username":"nobody","password":"whatever-it-is"}`
	head := "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := conn.Write([]byte(head + body[:10])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server start reading the request
	cancel()
	time.Sleep(100 * time.Millisecond) // shutdown has begun and is waiting for us
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	default:
	}
	if _, err := conn.Write([]byte(body[10:])); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 401") {
		t.Fatalf("in-flight request got %q", resp)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
}

// TestCheckpointPublishedToFileAndWebhook: signed checkpoints reach a
// file and a webhook outside the database.
func TestCheckpointPublishedToFileAndWebhook(t *testing.T) {
	got := make(chan string, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	}))
	defer hook.Close()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Audit.CheckpointFile = filepath.Join(t.TempDir(), "checkpoints.txt")
	cfg.Audit.CheckpointWebhook = hook.URL
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.AuditLog.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if posted := <-got; posted != c.Note {
		t.Fatalf("webhook got %q", posted)
	}
	b, _ := os.ReadFile(cfg.Audit.CheckpointFile)
	if !strings.Contains(string(b), c.Note) {
		t.Fatalf("file: %q", b)
	}
}
