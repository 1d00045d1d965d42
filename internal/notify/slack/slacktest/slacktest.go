// Package slacktest is a fake Slack for tests: a Web API server that
// records what Airlock posts (chat.postMessage, conversations.open) and
// the replies it sends to response_url, and a client that signs slash
// commands and interaction payloads with the app's signing secret, as
// Slack does, and sends them to Airlock's endpoints.
package slacktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Call is one request Airlock made to the fake.
type Call struct {
	Method string // chat.postMessage, conversations.open, or response for a response_url
	Path   string
	Form   url.Values     // Web API calls (form-encoded)
	JSON   map[string]any // JSON bodies (response_url, or a JSON Web API call)
	Auth   string
}

// Slack is the fake.
type Slack struct {
	t      testing.TB
	Server *httptest.Server
	Secret string
	// Fail, when set, answers a Web API method instead of the fake: an
	// HTTP status, and for 200 a Slack error code (ok: false).
	Fail func(method string) (status int, slackError string)

	mu    sync.Mutex
	calls []Call
	n     int
}

// New starts a fake Slack whose app signs with secret.
func New(t testing.TB, secret string) *Slack {
	s := &Slack{t: t, Secret: secret}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Server.Close)
	return s
}

// APIURL is the Web API's base URL (notify.slack.api_url).
func (s *Slack) APIURL() string { return s.Server.URL + "/api/" }

// ResponseURL is a new response_url for an interaction.
func (s *Slack) ResponseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return fmt.Sprintf("%s/response/%d", s.Server.URL, s.n)
}

func (s *Slack) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c := Call{Path: r.URL.Path, Auth: r.Header.Get("Authorization")}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		json.Unmarshal(b, &c.JSON)
	} else {
		c.Form, _ = url.ParseQuery(string(b))
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/response/"):
		c.Method = "response"
	case strings.HasPrefix(r.URL.Path, "/api/"):
		c.Method = strings.TrimPrefix(r.URL.Path, "/api/")
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if s.Fail != nil && c.Method != "response" {
		if status, code := s.Fail(c.Method); status != 0 {
			if status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "1")
			}
			w.WriteHeader(status)
			if status == http.StatusOK {
				json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": code})
			}
			return
		}
	}
	switch c.Method {
	case "conversations.open":
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": map[string]any{"id": "D" + strings.TrimLeft(c.Form.Get("users"), "UW")}})
	case "chat.postMessage":
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": c.Form.Get("channel"), "ts": "1700000000.000100"})
	case "response":
		w.Write([]byte(`{"ok":true}`))
	default:
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "unknown_method"})
	}
}

// Calls returns the requests made so far.
func (s *Slack) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Wait waits until Airlock has made a request that match accepts, and
// returns it; what says what is waited for.
func (s *Slack) Wait(what string, match func(Call) bool) Call {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, c := range s.Calls() {
			if match(c) {
				return c
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("waited 30s for Airlock to %s; it made %d requests", what, len(s.Calls()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Reply waits for Airlock's reply to respURL and returns its text.
func (s *Slack) Reply(respURL string) string {
	s.t.Helper()
	path := strings.TrimPrefix(respURL, s.Server.URL)
	c := s.Wait("reply to "+path, func(c Call) bool { return c.Method == "response" && c.Path == path })
	text, _ := c.JSON["text"].(string)
	if c.JSON["response_type"] != "ephemeral" {
		s.t.Errorf("the reply to %s is not ephemeral: %v", path, c.JSON)
	}
	return text
}

// Replied reports whether Airlock replied to respURL.
func (s *Slack) Replied(respURL string) bool {
	path := strings.TrimPrefix(respURL, s.Server.URL)
	for _, c := range s.Calls() {
		if c.Method == "response" && c.Path == path {
			return true
		}
	}
	return false
}

// Sign returns the X-Slack-Signature of body sent at ts.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%d:%s", ts, body)
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// Request is a signed request as Slack sends it.
type Request struct {
	Body      []byte
	Timestamp int64
	Signature string
}

// Signed signs form with the fake's secret at ts.
func (s *Slack) Signed(form url.Values, ts time.Time) Request {
	body := []byte(form.Encode())
	return Request{Body: body, Timestamp: ts.Unix(), Signature: Sign(s.Secret, ts.Unix(), body)}
}

// Command is a signed /airlock slash command typed by user in team.
func (s *Slack) Command(team, user, text string, ts time.Time) Request {
	return s.Signed(url.Values{"command": {"/airlock"}, "text": {text}, "team_id": {team}, "user_id": {user},
		"response_url": {s.ResponseURL()}, "trigger_id": {"t1"}}, ts)
}

// Click is a signed block_actions payload: user in team clicks the
// button actionID carrying value. It returns the request and its
// response_url.
func (s *Slack) Click(team, user, actionID, value string, ts time.Time) (Request, string) {
	respURL := s.ResponseURL()
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "team": map[string]any{"id": team}, "user": map[string]any{"id": user, "team_id": team},
		"api_app_id": "A1", "response_url": respURL, "trigger_id": "t1",
		"container": map[string]any{"type": "message", "message_ts": "1700000000.000100"},
		"actions": []map[string]any{{"type": "button", "block_id": "airlock.actions", "action_id": actionID, "value": value,
			"action_ts": strconv.FormatInt(ts.Unix(), 10)}},
	})
	return s.Signed(url.Values{"payload": {string(payload)}}, ts), respURL
}

// Send posts r to Airlock's endpoint at url, as Slack would, and returns
// the status and body.
func Send(t testing.TB, url string, r Request) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(r.Body)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(r.Timestamp, 10))
	req.Header.Set("X-Slack-Signature", r.Signature)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
