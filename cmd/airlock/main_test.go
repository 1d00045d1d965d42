package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runCLI runs the CLI in-process.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestBadConfigExitsWithOneLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	cases := []struct {
		name, body, want string
	}{
		{"unknown.yaml", "listen: 127.0.0.1:0\nlisten_port: 9\n", "unknown.yaml:2:1: listen_port: unknown field"},
		{"type.yaml", "login:\n  max_account_failures: many\n", "type.yaml:2:25: login.max_account_failures: expected an integer"},
		{"tls.yaml", "tls:\n  cert: /nonexistent/cert.pem\n  key: /nonexistent/key.pem\n", "tls.cert: expected a readable PEM file"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, "", "serve", "--config", write(c.name, c.body), "--data", dir)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code == 0 || len(lines) != 1 || !strings.Contains(lines[0], c.want) {
			t.Errorf("%s: exit %d, stderr %q; want one line containing %q", c.name, code, stderr, c.want)
		}
	}
	t.Setenv("AIRLOCK_DATABASE_DRIVER", "oracle")
	code, _, stderr := runCLI(t, "", "serve", "--data", dir)
	if code == 0 || !strings.Contains(stderr, "database.driver: expected sqlite or postgres") {
		t.Errorf("bad env: exit %d %q", code, stderr)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"serve", "--no-such-flag"}, {"tokens", "revoke"}, {"whoami", "extra"}, {"version", "-o", "xml"}} {
		if code, _, _ := runCLI(t, "", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, out, _ := runCLI(t, "", "version", "-o", "json"); code != 0 || !strings.Contains(out, `"version"`) {
		t.Errorf("version: %d %q", code, out)
	}
}

// buildBinary builds the airlock command once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "airlock")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

type demoCreds struct {
	URL   string `json:"url"`
	Users []struct {
		Username string   `json:"username"`
		Password string   `json:"password"`
		Groups   []string `json:"groups"`
	} `json:"users"`
}

// startDemo runs `airlock demo` as a real process and waits for its
// credentials file.
// syncBuffer is a bytes.Buffer safe for the exec copier and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

func startDemo(t *testing.T, bin string) (*exec.Cmd, demoCreds, *syncBuffer) {
	t.Helper()
	credFile := filepath.Join(t.TempDir(), "creds.json")
	cmd := exec.Command(bin, "demo", "--listen", "127.0.0.1:0", "--credentials-file", credFile)
	cmd.Env = append(os.Environ(), "AIRLOCK_CONFIG_DIR="+t.TempDir())
	stdout := &syncBuffer{}
	cmd.Stdout = stdout
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(credFile)
		if err == nil && len(b) > 0 && bytes.HasSuffix(b, []byte("}\n")) {
			var c demoCreds
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(credFile)
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("credentials file mode %v", st.Mode().Perm())
			}
			return cmd, c, stdout
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo wrote no credentials file; stdout:\n%s", stdout.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDemoServesHealthAndPasswordLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the binary")
	}
	bin := buildBinary(t)
	cmd, creds, stdout := startDemo(t, bin)
	resp, err := http.Get(creds.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	want := map[string]string{"alice": "dev", "bob": "ops", "carol": "security", "dana": "compliance", "erin": "noc"}
	if len(creds.Users) != len(want) {
		t.Fatalf("demo users: %+v", creds.Users)
	}
	for _, u := range creds.Users {
		if want[u.Username] != u.Groups[0] || !strings.Contains(stdout.String(), u.Password) {
			t.Errorf("demo user %s: groups %v, password printed: %v", u.Username, u.Groups, strings.Contains(stdout.String(), u.Password))
		}
	}
	if !strings.Contains(stdout.String(), "one-time password") {
		t.Error("the admin's one-time password was not printed")
	}
	// A password login through the API.
	body, _ := json.Marshal(map[string]string{"username": "alice", "password": creds.Users[0].Password})
	resp, err = http.Post(creds.URL+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("password login: %d", resp.StatusCode)
	}

	// The CLI against the real process: login, whoami, logout.
	cfgDir := t.TempDir()
	cli := func(stdin string, args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), "AIRLOCK_CONFIG_DIR="+cfgDir)
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := cli(creds.Users[0].Password+"\n", "login", "--server", creds.URL, "--username", "alice", "--password-stdin"); err != nil {
		t.Fatalf("login: %v %s", err, out)
	}
	st, err := os.Stat(filepath.Join(cfgDir, "profiles.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("profile file: %v %v", st, err)
	}
	out, err := cli("", "whoami", "-o", "json")
	if err != nil || !strings.Contains(out, `"username": "alice"`) {
		t.Fatalf("whoami: %v %s", err, out)
	}
	if out, err := cli("", "logout"); err != nil {
		t.Fatalf("logout: %v %s", err, out)
	}
	if out, err := cli("", "whoami"); err == nil {
		t.Fatalf("whoami after logout succeeded: %s", out)
	}

	// SIGTERM stops it cleanly.
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop after SIGTERM")
	}
}

func TestTokenEnvOverridesProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the binary")
	}
	bin := buildBinary(t)
	_, creds, _ := startDemo(t, bin)
	body, _ := json.Marshal(map[string]string{"username": "bob", "password": creds.Users[1].Password, "token_name": "t"})
	resp, err := http.Post(creds.URL+"/api/v1/auth/token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	c := exec.Command(bin, "whoami")
	c.Env = append(os.Environ(), "AIRLOCK_CONFIG_DIR="+t.TempDir(), "AIRLOCK_SERVER="+creds.URL, "AIRLOCK_TOKEN="+tok.Token)
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "bob") {
		t.Fatalf("whoami with AIRLOCK_TOKEN: %v %s", err, out)
	}
}
