package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/client"
)

// runCLI runs the CLI in-process.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// cli is the in-process CLI acting as one user: every invocation names
// that user's login profile with --profile, so who runs a command is an
// argument of the command, never process state (AIRLOCK_TOKEN) that a
// concurrent invocation could see change under it.
type cli struct {
	t       *testing.T
	profile string
}

// run runs the CLI as the user and returns its exit code and output.
func (c cli) run(args ...string) (int, string, string) {
	c.t.Helper()
	return runCLI(c.t, "", c.args(args)...)
}

func (c cli) args(args []string) []string { return append([]string{"--profile", c.profile}, args...) }

// start runs the CLI as the user in the background.
func (c cli) start(args ...string) *cliRun {
	r := &cliRun{done: make(chan struct{})}
	args = c.args(args)
	go func() {
		defer close(r.done)
		r.code = run(args, strings.NewReader(""), &r.stdout, &r.stderr)
	}()
	return r
}

// cliRun is an invocation of the CLI running in the background.
type cliRun struct {
	stdout, stderr syncBuffer
	done           chan struct{}
	code           int // once done is closed
}

// waitStderr waits until the invocation has written want to its standard
// error.
func (r *cliRun) waitStderr(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() error {
		if strings.Contains(r.stderr.String(), want) {
			return nil
		}
		select {
		case <-r.done:
			t.Fatalf("the CLI exited %d without writing %q to stderr; stdout %q, stderr %q", r.code, want, r.stdout.String(), r.stderr.String())
		default:
		}
		return fmt.Errorf("the CLI to write %q to stderr; so far stdout %q, stderr %q", want, r.stdout.String(), r.stderr.String())
	})
}

// wait waits for the invocation to exit and returns what runCLI would.
func (r *cliRun) wait(t *testing.T, timeout time.Duration) (int, string, string) {
	t.Helper()
	select {
	case <-r.done:
		return r.code, r.stdout.String(), r.stderr.String()
	case <-time.After(timeout):
		t.Fatalf("gave up after %v waiting for the CLI to exit; so far stdout %q, stderr %q", timeout, r.stdout.String(), r.stderr.String())
		return 0, "", ""
	}
}

// loginProfiles saves a login profile per user, named for the user, for
// the server at url (tokens by username) in a fresh AIRLOCK_CONFIG_DIR,
// and returns the in-process CLI as each of them. No profile is current
// and AIRLOCK_SERVER and AIRLOCK_TOKEN are cleared, so an invocation
// without --profile reaches no server.
func loginProfiles(t *testing.T, url string, tokens map[string]string) func(user string) cli {
	t.Helper()
	t.Setenv("AIRLOCK_CONFIG_DIR", t.TempDir())
	t.Setenv("AIRLOCK_SERVER", "")
	t.Setenv("AIRLOCK_TOKEN", "")
	ps := &client.Profiles{Profiles: map[string]*client.Profile{}}
	for user, token := range tokens {
		ps.Profiles[user] = &client.Profile{Server: url, Username: user, Token: token}
	}
	if err := ps.Save(); err != nil {
		t.Fatal(err)
	}
	return func(user string) cli {
		t.Helper()
		if tokens[user] == "" {
			t.Fatalf("no login profile for %q", user)
		}
		return cli{t: t, profile: user}
	}
}

// waitFor polls check until it returns nil. If that takes longer than
// timeout, the test fails with check's last error, which says what it was
// waiting for.
func waitFor(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpClient is for the tests' own requests: none waits without bound.
var httpClient = &http.Client{Timeout: 30 * time.Second}

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

// buildBinary builds the airlock command into the test's temporary
// directory.
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

// password is the demo user's password, as the credentials file gives it.
func (c demoCreds) password(t *testing.T, user string) string {
	t.Helper()
	for _, u := range c.Users {
		if u.Username == user {
			return u.Password
		}
	}
	t.Fatalf("no demo user %q in the credentials file: %+v", user, c.Users)
	return ""
}

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

// demoProcess is `airlock demo` running as a real process, in a process
// group of its own. The sshd nodes it starts are in that group: a SIGKILL
// to the demo alone would leave them running, one to the group does not.
type demoProcess struct {
	cmd            *exec.Cmd
	creds          demoCreds
	stdout, stderr *syncBuffer
	exited         chan struct{} // closed once the demo is reaped
	waitErr        error         // once exited is closed
}

// startDemo runs `airlock demo` on the data directory (a fresh one if
// empty) with extra environment variables, and waits until it has written
// its credentials file: the URL of the address it bound itself
// (--listen 127.0.0.1:0, no port borrowed beforehand) and the users.
// The demo and what it started are killed at cleanup.
func startDemo(t *testing.T, bin, data string, env ...string) *demoProcess {
	t.Helper()
	return startDemoArgs(t, bin, data, nil, env...)
}

// startDemoArgs is startDemo with more arguments for the demo command.
func startDemoArgs(t *testing.T, bin, data string, args []string, env ...string) *demoProcess {
	t.Helper()
	if data == "" {
		data = t.TempDir()
	}
	credFile := filepath.Join(t.TempDir(), "creds.json")
	cmd := exec.Command(bin, append([]string{"demo", "--data", data, "--listen", "127.0.0.1:0", "--credentials-file", credFile}, args...)...)
	cmd.Env = append(append(os.Environ(), "AIRLOCK_CONFIG_DIR="+t.TempDir()), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 10 * time.Second // should a descendant hold its output open
	p := &demoProcess{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { defer close(p.exited); p.waitErr = cmd.Wait() }()
	t.Cleanup(func() { p.kill(t) })
	waitFor(t, 60*time.Second, func() error {
		select {
		case <-p.exited:
			t.Fatalf("demo exited (%v) before writing its credentials file; stderr:\n%s", p.waitErr, p.stderr)
		default:
		}
		b, err := os.ReadFile(credFile)
		if err != nil {
			return fmt.Errorf("the demo's credentials file: %v", err)
		}
		// Until the file is whole, it is not JSON.
		if err := json.Unmarshal(b, &p.creds); err != nil {
			return fmt.Errorf("the demo's credentials file to be complete JSON: %v", err)
		}
		return nil
	})
	if st, err := os.Stat(credFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", st, err)
	}
	// The URL is the address the demo bound, not the :0 it was given.
	u, err := url.Parse(p.creds.URL)
	if err != nil || u.Port() == "" || u.Port() == "0" {
		t.Fatalf("credentials file URL %q is not a bound address (%v)", p.creds.URL, err)
	}
	resp, err := httpClient.Get(p.creds.URL + "/healthz")
	if err != nil {
		t.Fatalf("the demo does not answer at its credentials file's URL: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz at %s: %d", p.creds.URL, resp.StatusCode)
	}
	return p
}

// kill SIGKILLs the demo and everything in its process group, and waits
// until it is reaped. The group is signalled only while the demo is not
// yet reaped: until then its PID, the group's ID, cannot be reused.
func (p *demoProcess) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Errorf("kill the demo's process group %d: %v", p.cmd.Process.Pid, err)
	}
	p.waitExit(t, "SIGKILL")
}

// waitExit waits until the demo has exited after what was done to it,
// and returns how it exited.
func (p *demoProcess) waitExit(t *testing.T, after string) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(30 * time.Second):
		t.Fatalf("gave up after 30s waiting for the demo (pid %d) to exit after %s; stderr:\n%s", p.cmd.Process.Pid, after, p.stderr)
		return nil
	}
}

func TestDemoServesHealthAndPasswordLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the binary")
	}
	bin := buildBinary(t)
	demo := startDemo(t, bin, "")
	creds, stdout := demo.creds, demo.stdout
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
	alicePassword := creds.password(t, "alice")
	body, _ := json.Marshal(map[string]string{"username": "alice", "password": alicePassword})
	resp, err := httpClient.Post(creds.URL+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
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
		c.Env = append(os.Environ(), "AIRLOCK_CONFIG_DIR="+cfgDir, "AIRLOCK_SERVER=", "AIRLOCK_TOKEN=")
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := cli(alicePassword+"\n", "login", "--server", creds.URL, "--username", "alice", "--password-stdin"); err != nil {
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
	if err := demo.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := demo.waitExit(t, "SIGTERM"); err != nil {
		t.Fatalf("demo exited with %v after SIGTERM; stderr:\n%s", err, demo.stderr)
	}
}

func TestTokenEnvOverridesProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the binary")
	}
	bin := buildBinary(t)
	creds := startDemo(t, bin, "").creds
	body, _ := json.Marshal(map[string]string{"username": "bob", "password": creds.password(t, "bob"), "token_name": "t"})
	resp, err := httpClient.Post(creds.URL+"/api/v1/auth/token", "application/json", bytes.NewReader(body))
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
