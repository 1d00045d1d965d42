package api_test

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/config"
)

// testClock is the identity service's clock in these tests: it moves
// only when the test moves it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// throttleEnv is a server whose identity service reads a clock the test
// moves, with alice's account.
func throttleEnv(t *testing.T, mutate func(*config.Config)) (*env, *testClock, string) {
	e := newEnv(t, mutate)
	c := &testClock{t: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	e.srv.Identity.SetNow(c.now)
	return e, c, e.user("alice", "dev")
}

// from signs in to e as user from the loopback address ip (the server
// sees it as the source address), and returns the status and the
// Retry-After header.
func (e *env) loginFrom(ip, user, pw string) (int, string) {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	b, _ := json.Marshal(api.LoginRequest{Username: user, Password: pw})
	resp, err := c.Post(e.url+"/api/v1/auth/token", "application/json", bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestStrangerCannotLockOutTheOwner: five wrong passwords from anywhere
// used to lock an account for everyone for 15 minutes. Failures are
// counted per account and source: the stranger's source waits, for a
// time that doubles with each failure, and the owner, from another
// source, signs in.
func TestStrangerCannotLockOutTheOwner(t *testing.T) {
	e, c, pw := throttleEnv(t, nil)
	const stranger, owner = "127.0.0.2", "127.0.0.1"
	for i := range 3 {
		if code, _ := e.loginFrom(stranger, "alice", "wrong"); code != 401 {
			t.Fatalf("stranger's failure %d: %d, want 401", i+1, code)
		}
	}
	// After three failures each further one doubles the wait: 1s, 2s, 4s…
	for _, want := range []string{"1", "2", "4", "8"} {
		code, retry := e.loginFrom(stranger, "alice", pw)
		if code != 429 || retry != want {
			t.Fatalf("stranger at once, even with the right password: %d Retry-After %q, want 429 and %s", code, retry, want)
		}
		n, _ := strconv.Atoi(want)
		c.add(time.Duration(n)*time.Second - time.Millisecond)
		if code, retry := e.loginFrom(stranger, "alice", "wrong"); code != 429 || retry != "1" {
			t.Fatalf("stranger a millisecond early: %d Retry-After %q, want 429 and 1", code, retry)
		}
		c.add(time.Millisecond)
		if code, _ := e.loginFrom(stranger, "alice", "wrong"); code != 401 {
			t.Fatalf("stranger after waiting %ss: %d, want 401 (the password is checked)", want, code)
		}
	}
	// The owner, from another source, is not held up, typo included.
	if code, retry := e.loginFrom(owner, "alice", "typo"); code != 401 {
		t.Fatalf("owner's typo after the stranger's 7 failures: %d (Retry-After %q), want 401", code, retry)
	}
	if code, retry := e.loginFrom(owner, "alice", pw); code != 201 {
		t.Fatalf("owner after the stranger's 7 failures: %d (Retry-After %q), want 201", code, retry)
	}
	// The wait is capped at login.max_delay (15 minutes).
	for range 20 {
		c.add(15 * time.Minute)
		e.loginFrom(stranger, "alice", "wrong")
	}
	if code, retry := e.loginFrom(stranger, "alice", "wrong"); code != 429 || retry != "900" {
		t.Fatalf("after many failures: %d Retry-After %q, want 429 and 900", code, retry)
	}
}

// TestDistributedGuessIsSlowedNotLocked: failures on one account from
// many sources past login.max_account_failures take every source's free
// failures on it down to one, but a source that has not failed on it —
// the owner's — still signs in.
func TestDistributedGuessIsSlowedNotLocked(t *testing.T) {
	e, c, pw := throttleEnv(t, func(c *config.Config) { c.Login.MaxAccountFailures = 6 })
	for i := 2; i <= 7; i++ {
		if code, _ := e.loginFrom("127.0.0."+strconv.Itoa(i), "alice", "wrong"); code != 401 {
			t.Fatalf("guess from source %d: %d, want 401", i, code)
		}
	}
	if code, retry := e.loginFrom("127.0.0.1", "alice", "typo"); code != 401 {
		t.Fatalf("owner's typo during a distributed guess: %d (Retry-After %q), want 401", code, retry)
	}
	if code, retry := e.loginFrom("127.0.0.2", "alice", "wrong"); code != 429 || retry != "1" {
		t.Fatalf("second guess from one source of a distributed guess: %d Retry-After %q, want 429 and 1", code, retry)
	}
	// The owner's typo took the owner's source down to one free failure
	// too: the next attempt from it waits a second.
	if code, retry := e.loginFrom("127.0.0.1", "alice", pw); code != 429 || retry != "1" {
		t.Fatalf("owner right after a typo during a distributed guess: %d Retry-After %q, want 429 and 1", code, retry)
	}
	c.add(time.Second)
	if code, retry := e.loginFrom("127.0.0.1", "alice", pw); code != 201 {
		t.Fatalf("owner during a distributed guess: %d (Retry-After %q), want 201", code, retry)
	}
}

// TestOwnerSigningInDoesNotResetAStranger: the owner's good password
// clears the failures of the owner's source only. It used to clear every
// failure on the account, handing the stranger a fresh allowance each
// time the owner signed in.
func TestOwnerSigningInDoesNotResetAStranger(t *testing.T) {
	e, _, pw := throttleEnv(t, nil)
	const stranger, owner = "127.0.0.2", "127.0.0.1"
	for range 3 {
		e.loginFrom(stranger, "alice", "wrong")
	}
	if code, _ := e.loginFrom(owner, "alice", pw); code != 201 {
		t.Fatalf("owner: %d, want 201", code)
	}
	if code, retry := e.loginFrom(stranger, "alice", "wrong"); code != 429 || retry != "1" {
		t.Fatalf("stranger after the owner signed in: %d Retry-After %q, want 429 and 1 (still throttled)", code, retry)
	}
}
