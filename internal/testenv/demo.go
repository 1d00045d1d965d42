package testenv

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/server"
)

// Demo is a server on the demo's policy, inventory (local nodes), users
// and catalog, in a temporary data directory; it closes at cleanup.
type Demo struct {
	*server.Server
	// Passwords of the demo users by username.
	Passwords map[string]string
	// URL is where Serve answers (public_url in the configuration).
	URL string
	hs  *httptest.Server
}

// DemoServer starts a Demo, its configuration changed by mutate (e.g.
// SSO). Its run workers and HTTP server are started on demand (Serve);
// the listener is open from the start, so the configuration can name its
// URL.
func DemoServer(t testing.TB, mutate ...func(*config.Config)) *Demo {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	t.Cleanup(hs.Close)
	cfg := config.Default()
	cfg.PublicURL = "http://" + hs.Listener.Addr().String()
	cfg.Data = t.TempDir()
	cfg.PolicyFile = filepath.Join(cfg.Data, "policy.cedar")
	cfg.InventoryFile = filepath.Join(cfg.Data, "inventory.yaml")
	if err := os.WriteFile(cfg.PolicyFile, []byte(demo.Policy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.InventoryFile, []byte(demo.Inventory), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range mutate {
		m(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logTo io.Writer = io.Discard
	if os.Getenv("AIRLOCK_TEST_LOG") == "1" {
		logTo = os.Stderr // the server's log, when debugging a test
	}
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(logTo, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	users, err := demo.Seed(context.Background(), demo.Services{Store: s.Store, Identity: s.Identity, Review: s.Review})
	if err != nil {
		t.Fatal(err)
	}
	d := &Demo{Server: s, Passwords: map[string]string{}, URL: cfg.PublicURL, hs: hs}
	for _, u := range users {
		d.Passwords[u.Username] = u.Password
	}
	return d
}

// Serve starts the run workers, the notification dispatcher (when a
// channel is configured) and an HTTP listener, both stopped at
// cleanup before the server closes, and returns the base URL.
func (d *Demo) Serve(t testing.TB) string {
	t.Helper()
	d.hs.Config.Handler = d.Handler()
	d.hs.Start()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Runs.Start(ctx) }()
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		if d.Notify != nil {
			d.Notify.Run(ctx)
		}
	}()
	t.Cleanup(func() { d.hs.Close(); stop(); <-done; <-notified })
	return d.URL
}
