package web_test

import (
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/notify/slack"
)

// previewTmpl draws Block Kit blocks roughly as Slack does (header,
// text, two-column fields, context, buttons), from their JSON: a preview
// of what an approver sees, for the documentation.
var previewTmpl = template.Must(template.New("p").Funcs(template.FuncMap{
	"mrkdwn": func(s string) template.HTML {
		h := template.HTMLEscapeString(s)
		// *bold* and line breaks, the only mrkdwn Airlock's fields use.
		parts := strings.Split(h, "*")
		for i := 1; i < len(parts); i += 2 {
			parts[i] = "<b>" + parts[i] + "</b>"
		}
		return template.HTML(strings.ReplaceAll(strings.Join(parts, ""), "\n", "<br>"))
	},
}).Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Slack message preview</title><style>
body{font:15px/1.46 -apple-system,"Segoe UI",Lato,sans-serif;background:#f8f8f8;margin:0;padding:16px}
.msg{display:flex;gap:8px;background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px;max-width:640px}
.avatar{width:36px;height:36px;border-radius:4px;background:#1d4ed8;color:#fff;font-weight:700;display:flex;align-items:center;justify-content:center;flex:none}
.name{font-weight:900}.app{font-size:11px;background:#eee;border-radius:2px;padding:1px 3px;margin-left:4px;color:#555}
h1{font-size:18px;margin:4px 0 6px}.fields{display:grid;grid-template-columns:1fr 1fr;gap:6px 16px;margin:8px 0}
.fields div{overflow-wrap:anywhere}.ctx{color:#616061;font-size:12px;margin:6px 0}
.buttons{display:flex;flex-wrap:wrap;gap:8px;margin-top:8px}
.btn{border:1px solid #bbb;border-radius:4px;padding:4px 12px;font-weight:700;background:#fff}
.primary{background:#007a5a;color:#fff;border-color:#007a5a}.danger{color:#e01e5a;border-color:#e01e5a}
</style></head><body><div class="msg"><div class="avatar">A</div><div><span class="name">Airlock</span><span class="app">APP</span>
{{range .}}{{if eq .type "header"}}<h1>{{.text.text}}</h1>
{{else if eq .type "section"}}{{with .text}}<p>{{mrkdwn .text}}</p>{{end}}{{with .fields}}<div class="fields">{{range .}}<div>{{mrkdwn .text}}</div>{{end}}</div>{{end}}
{{else if eq .type "context"}}<div class="ctx">{{range .elements}}{{mrkdwn .text}}{{end}}</div>
{{else if eq .type "actions"}}<div class="buttons">{{range .elements}}<span class="btn {{.style}}">{{.text.text}}</span>{{end}}</div>{{end}}{{end}}
</div></div></body></html>`))

// TestSlackApprovalPreview renders the approval request an approver gets
// in Slack, from the blocks Airlock posts, checks that what will run
// where is all there, and with AIRLOCK_UI_SCREENSHOTS set saves
// full-page pictures at 1280 and 390 pixels wide (docs/ui/).
func TestSlackApprovalPreview(t *testing.T) {
	alloc := headless(t)
	m := &notify.Message{Kind: notify.KindApprovalNeeded, Type: notify.RunRequest, Subject: "run_06h2abk9ayr9r4jxzqebv1wc74",
		Time: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC), Title: "alice asks to run flush-cache in production",
		Text: "It waits for your approval. You approve exactly what is shown: a changed run needs a new approval.",
		Fields: []notify.Field{{Label: "Procedure", Value: "flush-cache"}, {Label: "Version", Value: "4f0c2b9e81aa"},
			{Label: "Environment", Value: "production"}, {Label: "Parameters", Value: `cache="catalog"`},
			{Label: "Targets", Value: "prod-app-1, prod-app-2"}, {Label: "Requester", Value: "alice"},
			{Label: "Reason", Value: "stale prices after the sale"}, {Label: "Expires", Value: "2026-11-28 09:00 UTC"}},
		Link:    "https://airlock.example.com/runs/run_06h2abk9ayr9r4jxzqebv1wc74",
		Actions: []notify.Action{{Name: "approve", Label: "Approve", Value: "run_x sha256:b"}, {Name: "deny", Label: "Deny", Value: "run_x sha256:b"}}}
	raw, err := json.Marshal(slack.Blocks(m))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []map[string]any
	json.Unmarshal(raw, &blocks)
	var page strings.Builder
	if err := previewTmpl.Execute(&page, blocks); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(page.String()))
	}))
	defer srv.Close()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, time.Minute)
	defer cancelT()
	var text string
	if err := chromedp.Run(ctx, chromedp.Navigate(srv.URL), chromedp.Text("body", &text, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"alice asks to run flush-cache in production", "Environment", "production", `cache="catalog"`,
		"prod-app-1, prod-app-2", "stale prices after the sale", "Approve", "Deny", "Open in Airlock"} {
		if !strings.Contains(text, want) {
			t.Errorf("the preview lacks %q:\n%s", want, text)
		}
	}
	dir := os.Getenv("AIRLOCK_UI_SCREENSHOTS")
	for _, width := range []int64{1280, 390} {
		var img []byte
		if err := chromedp.Run(ctx, chromedp.EmulateViewport(width, 600), chromedp.FullScreenshot(&img, 100)); err != nil {
			t.Fatal(err)
		}
		if dir != "" {
			name := filepath.Join(dir, "slack-approval-"+map[int64]string{1280: "1280", 390: "390"}[width]+".png")
			if err := os.WriteFile(name, img, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
