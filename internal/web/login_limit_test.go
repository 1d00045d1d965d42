package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestLoginFormIsBounded: the sign-in form, which anyone may post, is
// refused past a few KiB (it accepted 10 MB, and audited the username).
func TestLoginFormIsBounded(t *testing.T) {
	s := startServer(t)
	form := url.Values{"username": {strings.Repeat("u", 5<<20)}, "password": {"x"}}
	resp, err := http.Post(s.url+"/login", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 5 MiB sign-in form: %d, want 413", resp.StatusCode)
	}
}

// TestThrottledSignInSaysWhenToRetry: the sign-in page answers a
// throttled attempt as the API does, 429 with Retry-After (it answered
// 401, as for a wrong password, with no hint of when to try again).
func TestThrottledSignInSaysWhenToRetry(t *testing.T) {
	s := startServer(t)
	// The clock stands still: the fourth attempt comes however long the
	// first three took.
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	s.srv.Identity.SetNow(func() time.Time { return at })
	post := func() *http.Response {
		t.Helper()
		resp, err := http.PostForm(s.url+"/login", url.Values{"username": {"alice"}, "password": {"wrong-password"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 3 {
		if resp := post(); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	if resp := post(); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("throttled sign-in: %d Retry-After %q, want 429 and a delay", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
