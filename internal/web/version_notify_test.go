package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/procedure"
)

// TestVersionPageShowsNotifyRules: a reviewer reads a version's
// notification targets on its page — the whole definition for a first
// version, the changed target in the diff of the next — since they are
// part of what is approved.
func TestVersionPageShowsNotifyRules(t *testing.T) {
	s := startServer(t)
	ctx := t.Context()
	u, err := s.srv.Store.UserGetByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	alice := &identity.Principal{UserID: u.ID, Username: u.Username, Groups: []string{"dev", "payments"}}
	propose := func(slack string) string {
		t.Helper()
		srcs, err := procedure.Parse("page-payments.yaml", []byte("apiVersion: airlock/v1\nkind: Procedure\nname: page-payments\nowner: payments\nrisk: low\n"+
			"notify:\n  - kinds: [run_finished, approval_needed]\n    email: [payments-oncall@example.com]\n    slack: "+slack+"\n"+
			"steps:\n  - name: page\n    exec: [echo, paged]\n"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.srv.Review.Propose(ctx, alice, srcs[0])
		if err != nil {
			t.Fatal(err)
		}
		return r.Version.ID
	}
	bob := s.visitor(t, "bob")

	v1 := propose("C0123ABCDEF")
	code, body := bob.get("/versions/" + v1)
	if code != http.StatusOK {
		t.Fatalf("version page: %d", code)
	}
	i := strings.Index(body, `id="diff"`)
	if i < 0 {
		t.Fatal("no definition on the version page")
	}
	if def := body[i:]; !strings.Contains(def, "notify:\n  - kinds:\n      - approval_needed\n      - run_finished\n    email:\n      - payments-oncall@example.com\n    slack: C0123ABCDEF\n") {
		t.Fatalf("the version page lacks the notify rules:\n%.2000s", def)
	}

	if code, body := bob.post("/versions/"+v1+"/review", map[string][]string{"csrf_token": {bob.csrf()}, "decision": {"approve"},
		"digest": {versionDigest(t, s, v1)}}); code != http.StatusOK {
		t.Fatalf("approve v1: %d %.500s", code, body)
	}
	v2 := propose("C0999ZZZZZZ")
	_, body = bob.get("/versions/" + v2)
	if body = unescape(body); !strings.Contains(body, "-    slack: C0123ABCDEF\n") || !strings.Contains(body, "+    slack: C0999ZZZZZZ\n") {
		t.Fatalf("the diff lacks the changed Slack channel:\n%.3000s", body)
	}
}

func versionDigest(t *testing.T, s *site, id string) string {
	t.Helper()
	v, err := s.srv.Store.ProcedureVersionGet(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return v.Digest
}
