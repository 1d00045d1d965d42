package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
)

// loginEvents are the audit events about sign-ins that failed or were
// throttled from one source address: those of single attempts, and the
// summaries, with how many attempts all of them account for.
func (e *env) loginEvents(addr string) (single int, summaries []map[string]any, accounted int) {
	e.t.Helper()
	for _, typ := range []string{audit.UserLoginFailed, audit.UserLoginThrottled} {
		for _, ev := range e.events(typ) {
			if ev.SourceAddr == addr {
				single++
			}
		}
	}
	accounted = single
	for _, ev := range e.events(audit.UserLoginFailures) {
		var d map[string]any
		if err := json.Unmarshal(ev.Details, &d); err != nil {
			e.t.Fatal(err)
		}
		if ev.SourceAddr == addr && d["source_addr"] == addr {
			summaries = append(summaries, d)
			accounted += int(d["attempts"].(float64))
		}
	}
	return single, summaries, accounted
}

// TestFailedLoginsFromOneSourceAreOneEvent: anyone could append an audit
// event per failed or throttled sign-in. Now the first from a source in
// a minute is audited at once, the rest are counted and recorded as one
// user.login_failures event when the minute is over (at the source's
// next attempt, or by the sweep), and every attempt is accounted for.
func TestFailedLoginsFromOneSourceAreOneEvent(t *testing.T) {
	e, c, _ := throttleEnv(t, nil)
	const attacker, other = "127.0.0.2", "127.0.0.3"
	for i := range 400 {
		name := "alice"
		if i%2 == 1 {
			name = fmt.Sprintf("guess-%03d", i)
		}
		if code, _ := e.loginFrom(attacker, name, "wrong"); code != 401 && code != 429 {
			t.Fatalf("attempt %d: %d", i, code)
		}
	}
	if single, sums, _ := e.loginEvents(attacker); single != 1 || len(sums) != 0 {
		t.Fatalf("400 failed sign-ins within a minute made %d events and %d summaries, want 1 and none yet", single, len(sums))
	}
	// The window closes with the source's next attempt.
	c.add(time.Minute)
	e.loginFrom(attacker, "alice", "wrong")
	single, sums, accounted := e.loginEvents(attacker)
	if single != 2 || len(sums) != 1 || accounted != 401 {
		t.Fatalf("after the minute: %d events, %d summaries, %d attempts accounted for; want 2, 1, 401", single, len(sums), accounted)
	}
	s := sums[0]
	names, _ := s["usernames"].([]any)
	if s["attempts"] != 399.0 || s["failed"].(float64)+s["throttled"].(float64) != 399 || s["throttled"].(float64) < 300 ||
		len(names) != 10 || names[0] != "alice" || s["more_usernames"] != true {
		t.Fatalf("summary: %v", s)
	}
	// A source that stops: the sweep records its window once it is over.
	for range 5 {
		e.loginFrom(other, "bob", "wrong")
	}
	ctx := context.Background()
	if err := e.srv.Identity.FlushLoginReports(ctx); err != nil {
		t.Fatal(err)
	}
	if single, sums, _ := e.loginEvents(other); single != 1 || len(sums) != 0 {
		t.Fatalf("swept an open window: %d events, %d summaries", single, len(sums))
	}
	c.add(time.Minute)
	for range 2 { // a second sweep (another replica's) finds nothing left
		if err := e.srv.Identity.FlushLoginReports(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if single, sums, accounted := e.loginEvents(other); single != 1 || len(sums) != 1 || accounted != 5 {
		t.Fatalf("after the sweep: %d events, %d summaries, %d attempts accounted for; want 1, 1, 5", single, len(sums), accounted)
	}
	// The attacker's second window held only its audited first attempt:
	// nothing to summarise.
	if _, sums, accounted := e.loginEvents(attacker); len(sums) != 1 || accounted != 401 {
		t.Fatalf("attacker after the sweep: %d summaries, %d accounted for", len(sums), accounted)
	}
}

// TestRefusedSSOCallbacksAreOneEvent: a callback nobody started (no flow
// cookie) is refused and audited; thousands of them from one source are
// one event and a count, not thousands of events.
func TestRefusedSSOCallbacksAreOneEvent(t *testing.T) {
	p := newIDP(t)
	cfg := p.m.Config()
	e := newEnv(t, func(c *config.Config) {
		c.OIDC.Issuer, c.OIDC.ClientID, c.OIDC.ClientSecret = cfg.Issuer, cfg.ClientID, cfg.ClientSecret
	})
	for i := range 200 {
		resp, err := client.Get(e.url + "/auth/oidc/callback?state=x&code=y")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("callback %d: %d, want 401", i, resp.StatusCode)
		}
	}
	if single, _, _ := e.loginEvents("127.0.0.1"); single != 1 {
		t.Fatalf("200 refused callbacks made %d events, want 1 (and a count)", single)
	}
}
