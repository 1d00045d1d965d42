package web_test

import (
	"context"
	"encoding/json"
	"html"
	"net/url"
	"regexp"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/airlockhq/airlock/internal/store"
)

var fieldError = regexp.MustCompile(`(?s)<span class="field-error" id="e-([a-z_]+)"[^>]*>([^<]*)</span>`)

// TestFormChecksMatchTheServer fills the run form with bad values in the
// browser, where form.js stops the submission and shows a message, and
// posts the same values without the script, where the server refuses
// them: the message next to the field must be the same text, and
// neither stores a run.
func TestFormChecksMatchTheServer(t *testing.T) {
	s := newSite(t)
	// erin may request the high-risk report (alice may neither run nor
	// request it, and gets no form).
	ctx := s.browser(t, "erin")
	plain := s.visitor(t, "erin")
	token := plain.csrf()
	before, _ := s.srv.Store.RunList(context.Background(), store.RunListParams{})
	cases := []struct {
		field, value string
		want         string
	}{
		{"ticket", "", "is required"},
		{"ticket", "; rm -rf /", `must match [A-Z]+-[0-9]+, got "; rm -rf /"`},
		{"ticket", "$(id)", `must match [A-Z]+-[0-9]+, got "$(id)"`},
		{"ticket", "`id` \"quoted\" \\ ünï", "must match [A-Z]+-[0-9]+, got \"`id` \\\"quoted\\\" \\\\ ünï\""},
		{"limit", "0", "must be at least 1"},
		{"limit", "5000", "must be at most 1000"},
	}
	for _, c := range cases {
		values := map[string]string{"report": "stuck-settlements", "limit": "100", "ticket": "OPS-1"}
		values[c.field] = c.value

		// The browser, with form.js.
		acts := []chromedp.Action{chromedp.Navigate(s.url + "/procedures/db-readonly-query"),
			chromedp.SetValue("#environment", "staging", chromedp.ByID)}
		for k, v := range values {
			b, _ := json.Marshal(v)
			acts = append(acts, chromedp.Evaluate(`document.getElementById("p-`+k+`").value = `+string(b), nil))
		}
		var client, summary, invalid, location string
		var ok bool
		acts = append(acts, chromedp.Click("#run-form button.primary", chromedp.ByQuery),
			waitText(ctx, "#e-"+c.field, c.want[:5]),
			chromedp.Text("#e-"+c.field, &client, chromedp.ByID),
			chromedp.Text("#form-error", &summary, chromedp.ByID),
			chromedp.AttributeValue("#p-"+c.field, "aria-invalid", &invalid, &ok, chromedp.ByID),
			chromedp.Location(&location))
		if err := chromedp.Run(ctx, acts...); err != nil {
			screenshot(t, ctx, "form-check-failed")
			t.Fatalf("%s=%q in the browser: %v", c.field, c.value, err)
		}

		// The server, without it.
		form := url.Values{"csrf_token": {token}, "environment": {"staging"}}
		for k, v := range values {
			form.Set("p."+k, v)
		}
		code, body := plain.post("/procedures/db-readonly-query/run", form)
		server := ""
		for _, m := range fieldError.FindAllStringSubmatch(body, -1) {
			if m[1] == c.field {
				server = html.UnescapeString(m[2])
			}
		}
		if code != 400 || server != c.want {
			t.Errorf("%s=%q: server said %d %q, want %q", c.field, c.value, code, server, c.want)
		}
		if client != server {
			t.Errorf("%s=%q: the form says %q, the server %q", c.field, c.value, client, server)
		}
		if summary != "Check the highlighted parameter." || invalid != "true" || location != s.url+"/procedures/db-readonly-query" {
			t.Errorf("%s=%q: summary %q, aria-invalid %q, page %s", c.field, c.value, summary, invalid, location)
		}
	}
	screenshot(t, ctx, "form-check")
	after, _ := s.srv.Store.RunList(context.Background(), store.RunListParams{})
	if len(after) != len(before) {
		t.Fatalf("refused forms stored %d runs", len(after)-len(before))
	}
}
