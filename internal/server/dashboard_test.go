package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/testenv"
)

// TestRenderDashboard renders docs/grafana/airlock.json over a demo's
// data to docs/grafana/dashboard.png: it runs the demo with a few runs
// (some waiting for approval, one denied), scrapes /metrics every
// second, evaluates each panel's queries over the scrapes (the subset of
// PromQL the dashboard uses; rates over the interval between two
// scrapes instead of 5m) and has headless Chromium take a full-page
// screenshot of the panels, laid out by their gridPos. It is not
// Grafana. Set AIRLOCK_RENDER_DASHBOARD=1 to run it (about 20 seconds).
func TestRenderDashboard(t *testing.T) {
	if os.Getenv("AIRLOCK_RENDER_DASHBOARD") != "1" {
		t.Skip("set AIRLOCK_RENDER_DASHBOARD=1 to render docs/grafana/dashboard.png")
	}
	_, here, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(here), "..", "..", "docs", "grafana")
	raw, err := os.ReadFile(filepath.Join(dir, "airlock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash dashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}

	d := testenv.DemoServer(t)
	url := d.Serve(t)
	ctx := context.Background()
	var scrapes []scrapeAt
	take := func() {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		scrapes = append(scrapes, scrapeAt{at: time.Now(), samples: flatten(mfs)})
	}
	request := func(user, proc, env string, params map[string]any) *store.Run {
		r, err := d.Runs.Request(ctx, principal(t, d, user), run.RequestParams{Procedure: proc, Environment: env, Params: params})
		if err != nil {
			t.Fatalf("%s requests %s in %s: %v", user, proc, env, err)
		}
		return r
	}
	decide := func(r *store.Run, decision string) {
		if _, err := d.Runs.Decide(ctx, principal(t, d, "bob"), r.ID, decision, r.Binding, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	// Some page loads, so the HTTP panel has routes.
	for _, path := range []string{"/healthz", "/readyz", "/login", "/api/v1/procedures"} {
		if resp, err := http.Get(url + path); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	take()
	var pending []*store.Run
	for i := 0; i < 16; i++ {
		time.Sleep(time.Second) // a scrape interval: the panels plot over time
		switch i {
		case 0:
			request("alice", "flush-cache", "staging", map[string]any{"cache": "sessions"})
			request("alice", "flush-cache", "staging", map[string]any{"cache": "catalog"})
			pending = append(pending, request("erin", "restart-service", "production", map[string]any{"service": "api"}))
			pending = append(pending, request("alice", "flush-cache", "production", map[string]any{"cache": "catalog"}))
		case 2:
			request("erin", "restart-service", "staging", map[string]any{"service": "worker"})
			pending = append(pending, request("alice", "flush-cache", "production", map[string]any{"cache": "sessions"}))
		case 3:
			decide(pending[1], "approve")
		case 5:
			decide(pending[0], "approve")
			decide(pending[2], "deny")
		case 7:
			request("alice", "flush-cache", "staging", map[string]any{"cache": "exchange-rates"})
		case 9:
			if _, err := d.AuditLog.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
		take()
	}

	var panels []renderedPanel
	for _, p := range dash.Panels {
		rp := renderedPanel{Title: p.Title, Type: p.Type, Unit: p.FieldConfig.Defaults.Unit,
			Style: template.CSS(fmt.Sprintf("grid-column: %d / span %d; grid-row: %d / span %d", p.GridPos.X+1, p.GridPos.W, p.GridPos.Y+1, p.GridPos.H))}
		for _, tg := range p.Targets {
			rp.Queries = append(rp.Queries, tg.Expr)
			series, err := evaluate(tg.Expr, tg.LegendFormat, scrapes)
			if err != nil {
				t.Fatalf("panel %q: %v", p.Title, err)
			}
			rp.Series = append(rp.Series, series...)
		}
		rp.draw(scrapes[0].at)
		panels = append(panels, rp)
	}
	var page bytes.Buffer
	if err := pageTmpl.Execute(&page, map[string]any{"Title": dash.Title, "Panels": panels, "Scrapes": len(scrapes),
		"Span": scrapes[len(scrapes)-1].at.Sub(scrapes[0].at).Round(time.Second)}); err != nil {
		t.Fatal(err)
	}
	htmlPath := filepath.Join(t.TempDir(), "dashboard.html")
	if err := os.WriteFile(htmlPath, page.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath("/usr/bin/chromium"), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1400, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	bctx, cancelT := context.WithTimeout(bctx, time.Minute)
	defer cancelT()
	var img []byte
	if err := chromedp.Run(bctx, chromedp.Navigate("file://"+htmlPath), chromedp.FullScreenshot(&img, 100)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dashboard.png"), img, 0o644); err != nil {
		t.Fatal(err)
	}
}

type dashboard struct {
	Title  string `json:"title"`
	Panels []struct {
		Title       string                   `json:"title"`
		Type        string                   `json:"type"`
		GridPos     struct{ X, Y, W, H int } `json:"gridPos"`
		FieldConfig struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Targets []struct {
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
}

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type scrapeAt struct {
	at      time.Time
	samples []sample
}

// flatten turns metric families into samples as Prometheus stores them:
// a histogram becomes NAME_bucket{le}, NAME_count and NAME_sum.
func flatten(mfs map[string]*dto.MetricFamily) []sample {
	var out []sample
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			with := func(k, v string) map[string]string {
				c := map[string]string{k: v}
				for a, b := range ls {
					c[a] = b
				}
				return c
			}
			switch {
			case m.Counter != nil:
				out = append(out, sample{name, ls, m.GetCounter().GetValue()})
			case m.Gauge != nil:
				out = append(out, sample{name, ls, m.GetGauge().GetValue()})
			case m.Histogram != nil:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					if !math.IsInf(b.GetUpperBound(), 1) { // the parser keeps the +Inf bucket; it is the count
						out = append(out, sample{name + "_bucket", with("le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)), float64(b.GetCumulativeCount())})
					}
				}
				out = append(out, sample{name + "_bucket", with("le", "+Inf"), float64(h.GetSampleCount())},
					sample{name + "_count", ls, float64(h.GetSampleCount())}, sample{name + "_sum", ls, h.GetSampleSum()})
			}
		}
	}
	return out
}

// series is one line of a panel: a value per scrape (NaN: no value).
type series struct {
	Legend string
	Points []float64
	times  []time.Time
}

var (
	quantileRe = regexp.MustCompile(`^histogram_quantile\(([0-9.]+), sum by \(([^)]*)\) \(rate\((\w+)\[5m\]\)\)\)$`)
	sumRateRe  = regexp.MustCompile(`^sum by \(([^)]*)\) \(rate\((\w+)\[5m\]\)\)$`)
	aggRe      = regexp.MustCompile(`^(max|min)(?: by \(([^)]*)\))? ?\((\w+)(?:\{([^}]*)\})?\)$`)
	matcherRe  = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

// evaluate computes one query over the scrapes: the subset of PromQL the
// dashboard uses.
func evaluate(expr, legend string, scrapes []scrapeAt) ([]series, error) {
	type group struct {
		labels map[string]string
		// per scrape: for quantiles, le -> increase; else the value
		vals []map[string]float64
	}
	groups := map[string]*group{}
	key := func(ls map[string]string, by []string) (string, map[string]string) {
		kept := map[string]string{}
		var parts []string
		for _, b := range by {
			kept[b] = ls[b]
			parts = append(parts, b+"="+ls[b])
		}
		return strings.Join(parts, ","), kept
	}
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	add := func(k string, ls map[string]string, i int, sub string, v float64, combine func(a, b float64) float64) {
		g := groups[k]
		if g == nil {
			g = &group{labels: ls, vals: make([]map[string]float64, len(scrapes))}
			groups[k] = g
		}
		if g.vals[i] == nil {
			g.vals[i] = map[string]float64{}
		}
		if old, ok := g.vals[i][sub]; ok {
			v = combine(old, v)
		}
		g.vals[i][sub] = v
	}
	sum := func(a, b float64) float64 { return a + b }
	// rates: per series, the increase over the interval since the last
	// scrape, per second.
	rates := func(metric string, fn func(i int, s sample, perSec float64)) {
		for i := 1; i < len(scrapes); i++ {
			dt := scrapes[i].at.Sub(scrapes[i-1].at).Seconds()
			prev := map[string]float64{}
			for _, s := range scrapes[i-1].samples {
				if s.name == metric {
					prev[labelKey(s.labels)] = s.value
				}
			}
			for _, s := range scrapes[i].samples {
				if s.name != metric {
					continue
				}
				inc := s.value - prev[labelKey(s.labels)]
				if inc < 0 {
					inc = s.value // a counter reset
				}
				fn(i, s, inc/dt)
			}
		}
	}
	var quantile float64 = -1
	switch {
	case quantileRe.MatchString(expr):
		m := quantileRe.FindStringSubmatch(expr)
		quantile, _ = strconv.ParseFloat(m[1], 64)
		by := slices.DeleteFunc(split(m[2]), func(s string) bool { return s == "le" })
		rates(m[3], func(i int, s sample, r float64) {
			k, ls := key(s.labels, by)
			add(k, ls, i, s.labels["le"], r, sum)
		})
	case sumRateRe.MatchString(expr):
		m := sumRateRe.FindStringSubmatch(expr)
		rates(m[2], func(i int, s sample, r float64) {
			k, ls := key(s.labels, split(m[1]))
			add(k, ls, i, "", r, sum)
		})
	case aggRe.MatchString(expr):
		m := aggRe.FindStringSubmatch(expr)
		combine := math.Max
		if m[1] == "min" {
			combine = math.Min
		}
		matchers := matcherRe.FindAllStringSubmatch(m[4], -1)
		for i, sc := range scrapes {
		next:
			for _, s := range sc.samples {
				if s.name != m[3] {
					continue
				}
				for _, mt := range matchers {
					if s.labels[mt[1]] != mt[2] {
						continue next
					}
				}
				k, ls := key(s.labels, split(m[2]))
				add(k, ls, i, "", s.value, combine)
			}
		}
	default:
		return nil, fmt.Errorf("the renderer does not evaluate %q", expr)
	}
	var out []series
	for _, g := range groups {
		s := series{Legend: legend, Points: make([]float64, len(scrapes))}
		for k, v := range g.labels {
			s.Legend = strings.ReplaceAll(s.Legend, "{{"+k+"}}", v)
		}
		for i := range scrapes {
			s.times = append(s.times, scrapes[i].at)
			v, ok := g.vals[i][""]
			switch {
			case quantile >= 0:
				s.Points[i] = histogramQuantile(quantile, g.vals[i])
			case ok:
				s.Points[i] = v
			default:
				s.Points[i] = math.NaN()
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Legend < out[j].Legend })
	return out, nil
}

// histogramQuantile is Prometheus' histogram_quantile over cumulative
// bucket rates by upper bound: linear interpolation within the bucket.
func histogramQuantile(q float64, buckets map[string]float64) float64 {
	type b struct{ le, n float64 }
	var bs []b
	for le, n := range buckets {
		v, err := strconv.ParseFloat(le, 64)
		if err != nil {
			v = math.Inf(1)
		}
		bs = append(bs, b{v, n})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) < 2 || bs[len(bs)-1].n <= 0 {
		return math.NaN()
	}
	rank := q * bs[len(bs)-1].n
	for i, x := range bs {
		if x.n >= rank {
			if math.IsInf(x.le, 1) {
				return bs[i-1].le
			}
			lo, below := 0.0, 0.0
			if i > 0 {
				lo, below = bs[i-1].le, bs[i-1].n
			}
			return lo + (x.le-lo)*(rank-below)/(x.n-below)
		}
	}
	return math.NaN()
}

func labelKey(ls map[string]string) string {
	var ks []string
	for k, v := range ls {
		ks = append(ks, k+"="+v)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

type renderedPanel struct {
	Title, Type, Unit string
	Style             template.CSS
	Queries           []string
	Series            []series
	// drawn
	Lines  []line
	Stat   string
	YMax   string
	XLabel string
}

type line struct {
	Points template.HTMLAttr
	Color  string
	Legend string
	Last   string
}

var palette = []string{"#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a", "#37872d", "#c4162a"}

// draw lays the series out as SVG polylines in a 600×150 box (gaps where
// there is no value), or a stat's last value.
func (p *renderedPanel) draw(start time.Time) {
	if p.Type == "stat" {
		p.Stat = "No data"
		for _, s := range p.Series {
			for i := len(s.Points) - 1; i >= 0; i-- {
				if !math.IsNaN(s.Points[i]) {
					p.Stat = format(s.Points[i], p.Unit)
					break
				}
			}
		}
		return
	}
	ymax := 0.0
	for _, s := range p.Series {
		for _, v := range s.Points {
			if !math.IsNaN(v) {
				ymax = math.Max(ymax, v)
			}
		}
	}
	if ymax == 0 {
		ymax = 1
	}
	p.YMax = format(ymax, p.Unit)
	for n, s := range p.Series {
		var pts []string
		last := "–"
		end := s.times[len(s.times)-1].Sub(start).Seconds()
		for i, v := range s.Points {
			if math.IsNaN(v) {
				pts = append(pts, "M") // a gap
				continue
			}
			x := 600 * s.times[i].Sub(start).Seconds() / math.Max(end, 1)
			y := 150 - 145*v/ymax
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
			last = format(v, p.Unit)
		}
		path := ""
		move := true
		for _, pt := range pts {
			if pt == "M" {
				move = true
				continue
			}
			if move {
				path += " M" + pt
				move = false
			} else {
				path += " L" + pt
			}
			path += " l0.01,0" // with round caps, a dot: a lone value shows
		}
		p.Lines = append(p.Lines, line{Points: template.HTMLAttr(`d="` + strings.TrimSpace(path) + `"`), Color: palette[n%len(palette)], Legend: s.Legend, Last: last})
	}
}

func format(v float64, unit string) string {
	switch unit {
	case "s":
		switch {
		case v < 0.001:
			return fmt.Sprintf("%.0f µs", v*1e6)
		case v < 1:
			return fmt.Sprintf("%.1f ms", v*1e3)
		}
		return fmt.Sprintf("%.2f s", v)
	case "ops":
		return fmt.Sprintf("%.2f ops/s", v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title><style>
body { margin: 0; background: #111217; color: #ccccdc; font: 13px/1.4 Inter, Helvetica, Arial, sans-serif; }
header { padding: 12px 16px; border-bottom: 1px solid #2a2d35; }
header h1 { margin: 0; font-size: 18px; color: #fff; }
header p { margin: 4px 0 0; color: #8e8e9e; }
.grid { display: grid; grid-template-columns: repeat(24, 1fr); grid-auto-rows: 34px; gap: 8px; padding: 12px; width: 1376px; box-sizing: border-box; }
.panel { background: #181b1f; border: 1px solid #2a2d35; border-radius: 3px; padding: 8px 10px; overflow: hidden; display: flex; flex-direction: column; }
.panel h2 { margin: 0 0 2px; font-size: 14px; color: #fff; font-weight: 500; }
.q { font: 10px/1.3 monospace; color: #7f8aa3; white-space: pre-wrap; word-break: break-all; }
svg { flex: 1; width: 100%; min-height: 0; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 11px; }
.legend i { display: inline-block; width: 12px; height: 3px; margin-right: 4px; vertical-align: middle; }
.stat { flex: 1; display: flex; align-items: center; justify-content: center; font-size: 40px; color: #73bf69; font-weight: 500; }
.axis { font-size: 10px; color: #8e8e9e; }
</style></head><body>
<header><h1>{{.Title}} — a rendering of docs/grafana/airlock.json over a demo's data (not Grafana)</h1>
<p>{{.Scrapes}} scrapes of /metrics one second apart over {{.Span}}; each panel's queries are evaluated over them, with rates over the interval between two scrapes instead of 5m.</p></header>
<div class="grid">{{range .Panels}}
<section class="panel" style="{{.Style}}"><h2>{{.Title}}</h2>
{{range .Queries}}<div class="q">{{.}}</div>{{end}}
{{if eq .Type "stat"}}<div class="stat">{{.Stat}}</div>{{else}}
<div class="axis">y: 0 – {{.YMax}}; x: the {{$.Span}} of scrapes</div>
<svg viewBox="0 -5 600 165" preserveAspectRatio="none">
<line x1="0" y1="150" x2="600" y2="150" stroke="#2a2d35"/><line x1="0" y1="5" x2="600" y2="5" stroke="#2a2d35" stroke-dasharray="3 3"/>
{{range .Lines}}<path {{.Points}} fill="none" stroke="{{.Color}}" stroke-width="2.5" stroke-linecap="round" stroke-linejoin="round" vector-effect="non-scaling-stroke"/>{{end}}
</svg>
<div class="legend">{{range .Lines}}<span><i style="background: {{.Color}}"></i>{{.Legend}} <b>{{.Last}}</b></span>{{else}}<span>No data</span>{{end}}</div>{{end}}
</section>{{end}}
</div></body></html>
`))
