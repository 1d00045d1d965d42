package email

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"text/tabwriter"

	"github.com/airlockhq/airlock/internal/notify"
)

// page is the HTML part. html/template escapes every value by its
// context, so a field that holds "<script>" shows as text, and a Link
// that is not http(s) becomes "#ZgotmplZ" instead of running.
var page = template.Must(template.New("email").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}}</title></head>
<body style="margin:0;padding:24px;background:#f6f8fa;color:#1f2328;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:14px;line-height:1.5">
<div style="max-width:600px;margin:0 auto;background:#ffffff;border:1px solid #d0d7de;border-radius:6px;padding:24px">
<h1 style="margin:0 0 16px;font-size:18px">{{.Title}}</h1>
{{- range .Lines}}
<p style="margin:0 0 8px">{{.}}</p>
{{- end}}
{{- if .Fields}}
<table role="presentation" style="margin:16px 0;border-collapse:collapse;width:100%">
{{- range .Fields}}
<tr><th scope="row" style="padding:4px 16px 4px 0;text-align:left;vertical-align:top;white-space:nowrap;font-weight:normal;color:#57606a">{{.Label}}</th><td style="padding:4px 0;font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all">{{.Value}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- if .Link}}
<p style="margin:24px 0 8px"><a href="{{.Link}}" style="display:inline-block;padding:10px 16px;background:#1f6feb;color:#ffffff;border-radius:6px;text-decoration:none;font-weight:600">Open in Airlock</a></p>
<p style="margin:0;font-size:12px;color:#57606a">Or open <a href="{{.Link}}" style="color:#0969da">{{.Link}}</a></p>
{{- end}}
<p style="margin:24px 0 0;font-size:12px;color:#57606a">Airlock sent this automatically. Approvals and replies happen in Airlock, not by answering this email.</p>
</div>
</body></html>
`))

// render returns the plain-text and the HTML part of m.
func render(m *notify.Message) (text, html string, err error) {
	var t bytes.Buffer
	t.WriteString(m.Title + "\n\n")
	if m.Text != "" {
		t.WriteString(strings.TrimRight(m.Text, "\n") + "\n\n")
	}
	if len(m.Fields) > 0 {
		w := tabwriter.NewWriter(&t, 0, 0, 2, ' ', 0)
		for _, f := range m.Fields {
			fmt.Fprintf(w, "%s:\t%s\n", f.Label, oneLine(f.Value))
		}
		if err := w.Flush(); err != nil {
			return "", "", err
		}
		t.WriteString("\n")
	}
	if m.Link != "" {
		t.WriteString("Open in Airlock: " + m.Link + "\n\n")
	}
	t.WriteString("-- \nAirlock sent this automatically. Approvals and replies happen in Airlock, not by answering this email.\n")

	var h bytes.Buffer
	var lines []string
	if m.Text != "" {
		lines = strings.Split(strings.TrimRight(m.Text, "\n"), "\n")
	}
	if err := page.Execute(&h, struct {
		Title  string
		Lines  []string
		Fields []notify.Field
		Link   string
	}{m.Title, lines, m.Fields, m.Link}); err != nil {
		return "", "", fmt.Errorf("render email: %w", err)
	}
	return t.String(), h.String(), nil
}
