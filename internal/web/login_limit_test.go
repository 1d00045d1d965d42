package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
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
