package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/server"
	"github.com/airlockhq/airlock/internal/store"
)

// passwdServer starts a server with alice, who has three API tokens; the
// first is her CLI profile's. It returns the server, the CLI as alice and
// her token secrets.
func passwdServer(t *testing.T) (*server.Server, cli, []string) {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	ctx := context.Background()
	u, err := s.Identity.CreateUser(ctx, audit.System, identity.CreateUserParams{Username: "alice", Password: "alice-password-1"})
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for _, name := range []string{"cli", "ci", "laptop"} {
		secret, _, err := s.Identity.IssueLoginToken(ctx, u, name)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secret)
	}
	return s, loginProfiles(t, hs.URL, map[string]string{"alice": secrets[0]})("alice"), secrets
}

// revokedTokens says how many of the secrets no longer authenticate, and
// what the last password change event recorded.
func revokedTokens(t *testing.T, s *server.Server, secrets []string) (int, string) {
	t.Helper()
	n := 0
	for _, secret := range secrets {
		if _, err := s.Identity.Authenticate(context.Background(), secret); err != nil {
			n++
		}
	}
	evs, err := s.Store.AuditList(context.Background(), store.AuditListParams{After: -1, Type: audit.UserPasswordChange})
	if err != nil || len(evs) == 0 {
		t.Fatalf("no password change event: %v", err)
	}
	return n, string(evs[len(evs)-1].Details)
}

// TestPasswdRevokesTokensOnRequest: `airlock passwd --revoke-tokens`
// revokes every API token of the user, the one it is authenticated with
// included, and still reports success; from a pipe without the flag,
// nothing is asked and the tokens stay.
func TestPasswdRevokesTokensOnRequest(t *testing.T) {
	s, alice, secrets := passwdServer(t)
	code, out, stderr := runCLI(t, "alice-password-1\na-new-password-for-alice\n", alice.args([]string{"passwd", "--password-stdin"})...)
	if code != 0 || strings.Contains(stderr, "revoke") || strings.Contains(out, "revoked") {
		t.Fatalf("passwd: exit %d\n%s%s", code, out, stderr)
	}
	if n, _ := revokedTokens(t, s, secrets); n != 0 {
		t.Fatalf("%d tokens revoked without being asked", n)
	}
	code, out, stderr = runCLI(t, "a-new-password-for-alice\nanother-password-for-alice\n", alice.args([]string{"passwd", "--password-stdin", "--revoke-tokens"})...)
	if code != 0 || !strings.Contains(out, "Password changed") || !strings.Contains(out, "All your API tokens were revoked") {
		t.Fatalf("passwd --revoke-tokens: exit %d\n%s%s", code, out, stderr)
	}
	if n, ev := revokedTokens(t, s, secrets); n != 3 || !strings.Contains(ev, `"tokens_revoked":3`) {
		t.Fatalf("%d of 3 tokens revoked; event %s", n, ev)
	}
	if code, _, _ := alice.run("whoami"); code == 0 {
		t.Fatal("the CLI's revoked token still works")
	}
}

// TestPasswdAsksOnATerminal: on a terminal, passwd asks whether to
// revoke the tokens, saying how many, and does as answered.
func TestPasswdAsksOnATerminal(t *testing.T) {
	s, alice, secrets := passwdServer(t)
	ptmx, tty := openPTY(t)
	// The terminal's line discipline holds the lines until each read.
	if _, err := io.WriteString(ptmx, "alice-password-1\na-new-password-for-alice\ny\n"); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, ptmx) // what the terminal echoes
	done := make(chan struct{})
	var code int
	var out, errb syncBuffer
	go func() {
		defer close(done)
		code = run(alice.args([]string{"passwd"}), tty, &out, &errb)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("passwd on a terminal did not finish within a minute; stdout %q, stderr %q", out.String(), errb.String())
	}
	if code != 0 || !strings.Contains(errb.String(), "Also revoke your 3 API tokens (this CLI's included)? [y/N]") ||
		!strings.Contains(out.String(), "All your API tokens were revoked") {
		t.Fatalf("passwd on a terminal: exit %d; stdout %q, stderr %q", code, out.String(), errb.String())
	}
	if n, ev := revokedTokens(t, s, secrets); n != 3 || !strings.Contains(ev, `"tokens_revoked":3`) {
		t.Fatalf("%d of 3 tokens revoked after answering y; event %s", n, ev)
	}
}

// openPTY opens a pseudo-terminal pair: the master, which the test
// types into, and the terminal, which the CLI reads as its standard
// input.
func openPTY(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		if os.Getenv("AIRLOCK_TEST_STRICT") == "1" {
			t.Fatalf("AIRLOCK_TEST_STRICT=1 and no pseudo-terminal: %v", err)
		}
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptmx, tty
}
