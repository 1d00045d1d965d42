package slack_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/notify/slack"
	"github.com/airlockhq/airlock/internal/notify/slack/slacktest"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newCommandsServer serves the slash command endpoint alone, over a real
// SQLite store, with requests from source 192.0.2.7.
func newCommandsServer(t *testing.T, c *clock) (*slack.Handler, store.Store, string) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := slack.NewHandler(slack.HandlerConfig{Store: st, SigningSecret: "secret", PublicURL: "https://airlock.example", Now: c.now})
	cmds := h.Commands()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cmds.ServeHTTP(w, r.WithContext(audit.WithMeta(r.Context(), audit.Meta{SourceAddr: "192.0.2.7"})))
	}))
	t.Cleanup(srv.Close)
	return h, st, srv.URL
}

func deniedEvents(t *testing.T, st store.Store) []map[string]any {
	t.Helper()
	evs, err := st.AuditList(context.Background(), store.AuditListParams{After: -1, Type: audit.ChatInteractionDenied, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range evs {
		var d map[string]any
		json.Unmarshal(e.Details, &d)
		if e.SourceAddr != d["source_addr"] {
			t.Errorf("event source %q, details %v", e.SourceAddr, d["source_addr"])
		}
		out = append(out, d)
	}
	return out
}

// TestTimestampAgainstAirlockClock: a request signed now is stale when
// Airlock's clock is 6 minutes ahead or behind; the window is Airlock's
// clock, not only the machine's.
func TestTimestampAgainstAirlockClock(t *testing.T) {
	base := time.Now()
	c := &clock{t: base}
	_, st, url := newCommandsServer(t, c)
	fake := &slacktest.Slack{Secret: "secret"}
	help := func() (int, string) {
		return slacktest.Send(t, url, fake.Signed(map[string][]string{"command": {"/airlock"}, "text": {"help"}, "team_id": {"T1"}, "user_id": {"U1"}}, time.Now()))
	}
	if status, body := help(); status != 200 || !strings.Contains(body, "/airlock link CODE") {
		t.Fatalf("a fresh command: %d %s", status, body)
	}
	for _, skew := range []time.Duration{6 * time.Minute, -6 * time.Minute} {
		c.set(base.Add(skew))
		if status, body := help(); status != 401 || !strings.Contains(body, slack.ReasonStale) {
			t.Fatalf("Airlock's clock %v off: %d %s", skew, status, body)
		}
	}
	if evs := deniedEvents(t, st); len(evs) != 1 || evs[0]["reason"] != slack.ReasonStale {
		t.Fatalf("events: %v", evs)
	}
}

// TestRefusalsDoNotFloodTheAudit: a hundred forged requests from one
// source in a minute are two events — the first at once, the count of
// the rest with the first of the next minute — and none is lost.
func TestRefusalsDoNotFloodTheAudit(t *testing.T) {
	base := time.Now()
	c := &clock{t: base}
	h, st, url := newCommandsServer(t, c)
	forged := slacktest.Request{Body: []byte("text=link+X"), Timestamp: base.Unix(), Signature: "v0=" + strings.Repeat("00", 32)}
	for i := range 100 {
		c.set(base.Add(time.Duration(i) * 500 * time.Millisecond))
		if status, _ := slacktest.Send(t, url, forged); status != 401 {
			t.Fatalf("forged request %d: %d", i, status)
		}
	}
	if evs := deniedEvents(t, st); len(evs) != 1 || evs[0]["reason"] != slack.ReasonBadSignature {
		t.Fatalf("after 100 forged requests in 50s: %v", evs)
	}
	h.FlushRefusals(context.Background()) // the minute is not over: nothing to record
	if evs := deniedEvents(t, st); len(evs) != 1 {
		t.Fatalf("flushed an open window: %v", evs)
	}
	c.set(base.Add(61 * time.Second))
	slacktest.Send(t, url, forged)
	evs := deniedEvents(t, st)
	if len(evs) != 2 {
		t.Fatalf("after the minute: %d events", len(evs))
	}
	earlier, _ := evs[1]["earlier"].(map[string]any)
	if evs[1]["reason"] != slack.ReasonBadSignature || earlier["refusals"] != float64(99) {
		t.Fatalf("the second event: %v", evs[1])
	}
	// The sweep records a closed window with nothing after it.
	slacktest.Send(t, url, forged)
	c.set(base.Add(3 * time.Minute))
	h.FlushRefusals(context.Background())
	if evs := deniedEvents(t, st); len(evs) != 3 || evs[2]["earlier"].(map[string]any)["refusals"] != float64(1) {
		t.Fatalf("after the sweep: %v", evs)
	}
}
