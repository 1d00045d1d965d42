package api_test

import (
	"strings"
	"testing"
)

// TestLoginCannotFloodTheAudit: anyone, without signing in, could grow
// the audit log by megabytes a request with a long username. A login
// body past a few KiB is refused with 413 before anything is stored,
// and the name an attempt is audited under is cut short.
func TestLoginCannotFloodTheAudit(t *testing.T) {
	d := newDemoEnv(t, nil)
	events := func() []any {
		_, out, _ := d.call("GET", "/api/v1/audit/events?type=user.login_failed&limit=1000", d.tok["dana"], nil)
		return out["items"].([]any)
	}
	before := len(events())
	for _, path := range []string{"/api/v1/auth/token", "/api/v1/auth/login"} {
		code, out, _ := d.call("POST", path, "", map[string]string{"username": strings.Repeat("u", 5<<20), "password": "x"})
		if code != 413 {
			t.Fatalf("%s with a 5 MiB username: %d %v", path, code, out)
		}
	}
	if n := len(events()); n != before {
		t.Fatalf("refused oversized logins were audited: %d new events", n-before)
	}
	long := strings.Repeat("é", 2000) // 4,000 bytes: within the body limit
	if code, out, _ := d.call("POST", "/api/v1/auth/token", "", map[string]string{"username": long, "password": "x"}); code != 401 {
		t.Fatalf("login with a long username: %d %v", code, out)
	}
	evs := events()
	last := evs[0].(map[string]any)
	for _, e := range evs {
		if e.(map[string]any)["seq"].(float64) > last["seq"].(float64) {
			last = e.(map[string]any)
		}
	}
	name, _ := last["details"].(map[string]any)["username"].(string)
	if len(name) > 200 || !strings.HasSuffix(name, "…(4000 bytes)") {
		t.Fatalf("the audited username is %d bytes: %.80q…", len(name), name)
	}
}
