package api

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
)

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Metrics are the HTTP metrics.
type Metrics struct {
	Requests *prometheus.CounterVec
	Duration *prometheus.HistogramVec
}

// NewMetrics registers the HTTP metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "airlock_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.Requests, m.Duration)
	return m
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe wraps every request: request ID, audit metadata, panic
// recovery, access log and metrics. route is the registered pattern, so
// metric labels stay bounded.
func (h *Handler) observe(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := airlock.NewID(airlock.PrefixRequest, start)
		w.Header().Set("X-Request-Id", id)
		addr, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			addr = r.RemoteAddr
		}
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		ctx = audit.WithMeta(ctx, audit.Meta{RequestID: id, SourceAddr: addr, UserAgent: r.UserAgent()})
		r = r.WithContext(ctx)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				h.Log.ErrorContext(ctx, "panic", "request_id", id, "panic", p)
				if sw.code == 0 {
					writeError(sw, r, h.Log, airlock.Errorf(airlock.Internal, "internal error"))
				}
			}
			d := time.Since(start)
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			if h.Metrics != nil {
				h.Metrics.Requests.WithLabelValues(route, r.Method, strconv.Itoa(code)).Inc()
				h.Metrics.Duration.WithLabelValues(route, r.Method).Observe(d.Seconds())
			}
			attrs := []any{"request_id", id, "method", r.Method, "route", route, "status", code,
				"duration_ms", float64(d.Microseconds()) / 1000, "remote_addr", addr}
			if p := identity.PrincipalFrom(r.Context()); p != nil {
				attrs = append(attrs, "user", p.Username)
			}
			h.Log.InfoContext(ctx, "http request", attrs...)
		}()
		next.ServeHTTP(sw, r)
	})
}

// SessionCookie names the browser session cookie.
const SessionCookie = "airlock_session"

// credential returns the secret the request authenticates with and
// whether it came from the session cookie.
func credential(r *http.Request) (secret string, fromCookie bool) {
	if a := r.Header.Get("Authorization"); a != "" {
		if t, ok := strings.CutPrefix(a, "Bearer "); ok {
			return strings.TrimSpace(t), false
		}
		return "", false
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		return c.Value, true
	}
	return "", false
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// CSRFHeader carries the CSRF token on browser requests that change
// state; forms send it as the csrf_token field.
const CSRFHeader = "X-CSRF-Token"

// authenticate resolves the caller for routes that need one. A state
// changing request authenticated by the session cookie must carry the
// session's CSRF token; API tokens are not sent by browsers on their own,
// so bearer requests need none. A user who must change their password may
// only do that, see who they are, or log out.
func (h *Handler) authenticate(rt Route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, fromCookie := credential(r)
		if secret == "" {
			writeError(w, r, h.Log, airlock.Errorf(airlock.Unauthenticated, "authentication required"))
			return
		}
		p, err := h.Identity.Authenticate(r.Context(), secret)
		if err != nil {
			if fromCookie {
				clearCookie(w, SessionCookie, "/", h.Secure)
			}
			writeError(w, r, h.Log, err)
			return
		}
		if fromCookie && !safeMethod(r.Method) {
			tok := r.Header.Get(CSRFHeader)
			if tok == "" {
				tok = r.PostFormValue("csrf_token")
			}
			if !equalConstantTime(tok, identity.CSRFToken(secret)) {
				writeError(w, r, h.Log, airlock.Errorf(airlock.Forbidden, "missing or invalid CSRF token"))
				return
			}
		}
		if p.MustChangePassword && !rt.DuringPasswordChange {
			writeError(w, r, h.Log, airlock.Errorf(airlock.PasswordExpired, "you must change your password first (POST /api/v1/auth/password or airlock passwd)"))
			return
		}
		next.ServeHTTP(w, r.WithContext(identity.WithPrincipal(r.Context(), p)))
	})
}
