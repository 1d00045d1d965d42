package server_test

import (
	"bufio"
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
	"github.com/airlockhq/airlock/internal/testenv"
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
	addr := strings.TrimPrefix(s.URL(), "http://")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// No read or write on the connection waits past this.
	if err := conn.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	body := `{"username":"nobody","password":"whatever-it-is"}`
	head := "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n" +
		"Expect: 100-continue\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	// The server answers 100 Continue when the handler starts reading the
	// body: from then on the request is in flight.
	rd := bufio.NewReader(conn)
	if line, err := rd.ReadString('\n'); err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("waiting for the handler to ask for the body (100 Continue): %q, %v", line, err)
	}
	if line, err := rd.ReadString('\n'); err != nil || line != "\r\n" {
		t.Fatalf("100 Continue: %q, %v", line, err)
	}
	if _, err := conn.Write([]byte(body[:10])); err != nil {
		t.Fatal(err)
	}
	cancel()
	// Shutdown closes the listener first, then waits for the requests in
	// flight: once a new connection is refused, it is waiting for ours.
	testenv.Eventually(t, "the listener to close once shutdown began", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	default:
	}
	if _, err := conn.Write([]byte(body[10:])); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("waiting for the answer to the in-flight request: %v (got %q)", err, resp)
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 401") {
		t.Fatalf("in-flight request got %q", resp)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return within a minute of the last request being answered")
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
	select {
	case posted := <-got:
		if posted != c.Note {
			t.Fatalf("webhook got %q", posted)
		}
	case <-time.After(time.Minute):
		t.Fatal("the webhook received no checkpoint within a minute")
	}
	b, _ := os.ReadFile(cfg.Audit.CheckpointFile)
	if !strings.Contains(string(b), c.Note) {
		t.Fatalf("file: %q", b)
	}
}
