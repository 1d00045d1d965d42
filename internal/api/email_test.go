package api_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/textproto"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/demo"
)

// mailbox is a real SMTP server (a local relay) that keeps what it is
// given: recipient, subject and body.
type mailbox struct {
	mu   sync.Mutex
	mail []mail
	host string
	port int
}

type mail struct{ to, data string }

type mailSession struct {
	mb *mailbox
	to []string
}

func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	s.mb.mu.Lock()
	defer s.mb.mu.Unlock()
	for _, to := range s.to {
		s.mb.mail = append(s.mb.mail, mail{to: to, data: string(b)})
	}
	return nil
}
func (s *mailSession) Reset()        { s.to = nil }
func (s *mailSession) Logout() error { return nil }

func newMailbox(t *testing.T) *mailbox {
	mb := &mailbox{}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{mb: mb}, nil }))
	s.Domain, s.ErrorLog = "mx.test", log.New(io.Discard, "", 0)
	s.ReadTimeout, s.WriteTimeout = time.Minute, time.Minute
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close(); ln.Close() })
	a := ln.Addr().(*net.TCPAddr)
	mb.host, mb.port = a.IP.String(), a.Port
	return mb
}

func (mb *mailbox) config(c *config.Config) {
	c.Notify.Email = config.NotifyEmail{Host: mb.host, Port: mb.port, TLS: "none", From: "airlock@demo.airlock.local"}
}

// to lists who received a message whose text holds all of want, sorted,
// once it stops changing.
func (mb *mailbox) to(t *testing.T, wantN int, want ...string) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = nil
		mb.mu.Lock()
		for _, m := range mb.mail {
			all := true
			for _, w := range want {
				all = all && strings.Contains(m.data, w)
			}
			if all {
				got = append(got, strings.TrimSuffix(m.to, "@demo.airlock.local"))
			}
		}
		mb.mu.Unlock()
		if len(got) >= wantN {
			sort.Strings(got)
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %d messages with %q; got %v", wantN, want, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEmailGoesToThoseConcerned: each event's email reaches exactly the
// people concerned, at their accounts' addresses, through a real SMTP
// server: approvers (never the requester) for a request, the requester
// for its outcome, eligible reviewers (never the author) for a version,
// the other admins for a policy change.
func TestEmailGoesToThoseConcerned(t *testing.T) {
	mb := newMailbox(t)
	d := newDemoEnv(t, mb.config)
	_, r := d.request(t, "alice", api.RunRequest{Procedure: "flush-cache", Environment: "production", Params: map[string]any{"cache": "catalog"}})
	id := r["id"].(string)
	if got := mb.to(t, 1, id, "X-Airlock-Event: run.request"); strings.Join(got, ",") != "bob" {
		t.Fatalf("approval_needed went to %v, want bob (ops approves; alice asked)", got)
	}
	d.call("POST", "/api/v1/runs/"+id+"/approve", d.tok["bob"], api.DecisionRequest{Binding: r["binding"].(string)})
	for _, ev := range []string{"run.approve", "run.start", "run.finish"} {
		if got := mb.to(t, 1, id, "X-Airlock-Event: "+ev); strings.Join(got, ",") != "alice" {
			t.Fatalf("%s went to %v, want alice", ev, got)
		}
	}
	code, out, _ := d.call("POST", "/api/v1/versions", d.tok["alice"], api.ProposeRequest{Source: strings.Replace(restartV1, "name: restart-api", "name: restart-api-3", 1)})
	if code != 201 {
		t.Fatalf("propose: %d %v", code, out)
	}
	vid := out["version"].(map[string]any)["id"].(string)
	// A medium-risk version: ops and security review (bob, carol), not
	// its author.
	if got := mb.to(t, 2, vid, "X-Airlock-Event: procedure_version.propose"); strings.Join(got, ",") != "bob,carol" {
		t.Fatalf("review_needed went to %v, want bob and carol", got)
	}
	_, pol, _ := d.call("POST", "/api/v1/policies", d.tok["bob"], api.ProposePolicyRequest{Text: demo.Policy + "\n// v2\n", Description: "v2"})
	got := mb.to(t, 1, fmt.Sprintf("policy v%v", pol["number"]), "X-Airlock-Event: policy.propose")
	if strings.Contains(strings.Join(got, ","), "bob") || !strings.Contains(strings.Join(got, ","), "carol") {
		t.Fatalf("policy_needed went to %v, want the other admins, not bob", got)
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	for _, m := range mb.mail {
		if !strings.Contains(m.data, "Content-Type: text/html") || !strings.Contains(decoded(t, m.data), d.url+"/") ||
			!strings.Contains(decoded(t, m.data), "Open in Airlock") {
			t.Fatalf("a message without its HTML part or link: %s", m.data)
		}
	}
}

// decoded is a message's text as a reader sees it: each part's body
// decoded from its transfer encoding (a secret base64-encoded in transit
// must be caught too).
func decoded(t *testing.T, data string) string {
	t.Helper()
	msg, err := netmail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatalf("not a message: %v", err)
	}
	var out strings.Builder
	var walk func(h textproto.MIMEHeader, body io.Reader)
	walk = func(h textproto.MIMEHeader, body io.Reader) {
		mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextPart()
				if err != nil {
					return
				}
				walk(p.Header, p)
			}
		}
		switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		}
		b, _ := io.ReadAll(body)
		out.Write(b)
	}
	walk(textproto.MIMEHeader(msg.Header), msg.Body)
	return out.String()
}
