// Package server composes Airlock: it opens the store named by the
// configuration, bootstraps the first admin, builds the services and the
// HTTP handler, and runs the HTTP server with graceful shutdown. Tests
// start whole servers through it, as the binary does.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/authz"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/executor"
	"github.com/airlockhq/airlock/internal/executor/contain"
	"github.com/airlockhq/airlock/internal/executor/local"
	"github.com/airlockhq/airlock/internal/executor/sshexec"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/metrics"
	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/notify/slack"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/review"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/secretstore"
	"github.com/airlockhq/airlock/internal/sso"
	"github.com/airlockhq/airlock/internal/standing"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/postgres"
	"github.com/airlockhq/airlock/internal/store/sqlite"
	"github.com/airlockhq/airlock/internal/trigger"
	"github.com/airlockhq/airlock/internal/web"
)

// Server is a running (or ready to run) Airlock.
type Server struct {
	Config   config.Config
	Log      *slog.Logger
	Store    store.Store
	Identity *identity.Service
	Review   *review.Service
	Authz    *authz.Authorizer
	Runs     *run.Service
	// Standing holds schedules and triggers and runs the scheduler.
	Standing *standing.Service
	// Triggers takes event triggers' webhooks.
	Triggers *trigger.Service
	Nodes    *inventory.Service
	Secrets  *secretstore.Service
	AuditLog *audit.Log
	// Notify delivers notifications; nil when no channel is configured.
	Notify *notify.Dispatcher
	// AuditKeyCreated is the new checkpoint verifier key, when this start
	// created it (printed once, like the admin password).
	AuditKeyCreated string
	// AdminPassword is the one-time password of the admin user created on
	// this start, or empty when the store already had users.
	AdminPassword string
	// Now is the clock every service and handler reads, through the
	// server, at each use; nil means time.Now. Tests move time with it;
	// set it before Serve, or while nothing else runs.
	Now func() time.Time
	// Slack serves Slack's callbacks when notify.slack is configured
	// (else nil); its Close records the refusals it is still counting.
	Slack *slack.Handler

	auditKeyPath   string // where the audit signing key came from
	masterKeyPath  string // where the master key came from
	handler        http.Handler
	checkpointHook *webhook
	http           *http.Server
	ln             net.Listener
	ready          atomic.Bool

	// listen hears the other replicas' notices until its context ends
	// (Serve); nil without other replicas (SQLite).
	listen func(ctx context.Context)
	// contain holds local steps' cgroups (and records), workDirs ended
	// runs' working directories kept for later runs: both are released
	// once every run has stopped (release).
	contain  *contain.Manager
	workDirs *local.WorkDirs
}

// OpenStore opens the store the configuration names; log receives what
// the store's background work reports.
func OpenStore(ctx context.Context, cfg config.Config, log *slog.Logger) (store.Store, error) {
	switch cfg.Database.Driver {
	case "postgres":
		return postgres.Open(ctx, cfg.Database.URL, postgres.Options{MaxConns: cfg.Database.MaxConns, Log: log})
	default:
		return sqlite.Open(ctx, cfg.DatabasePath())
	}
}

// OpenStoreReadOnly opens the existing store the configuration names for
// reading only: it creates, migrates and writes nothing.
func OpenStoreReadOnly(ctx context.Context, cfg config.Config) (store.Store, error) {
	switch cfg.Database.Driver {
	case "postgres":
		return postgres.Open(ctx, cfg.Database.URL, postgres.Options{MaxConns: cfg.Database.MaxConns, ReadOnly: true})
	default:
		return sqlite.OpenReadOnly(ctx, cfg.DatabasePath())
	}
}

// New opens the store, applies migrations, bootstraps the admin user on a
// fresh store and builds the HTTP handler. cfg must be valid.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Server, error) {
	if err := privateDataDir(cfg.Data, log); err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	s := &Server{Config: cfg, Log: log, Store: st}
	if err := s.build(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

// privateDataDir makes the data directory, or takes group and other
// permissions off an existing one: it holds the master key, the audit
// signing key, the SQLite database and the steps' working directories.
// MkdirAll leaves an existing directory's mode alone, hence the Chmod.
func privateDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data: %s is not a directory", dir)
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, perm&^0o077); err != nil {
		// Not ours to change (another owner): say so, and go on.
		log.Warn("the data directory is open to other users and could not be made private; make it mode 0700",
			"path", dir, "mode", fmt.Sprintf("%#o", perm), "err", err)
		return nil
	}
	log.Warn("made the data directory private: other users had access to it", "path", dir,
		"was", fmt.Sprintf("%#o", perm), "now", fmt.Sprintf("%#o", perm&^0o077))
	return nil
}

// now is the server's clock (Now, or time.Now): build hands this method
// to every service, so a clock set after New still reaches them all.
func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) build(ctx context.Context) error {
	cfg := s.Config
	// Metrics first: every service writes through the instrumented store.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for name, db := range s.Store.DBs() {
		reg.MustRegister(collectors.NewDBStatsCollector(db, name))
	}
	errCounts, _ := s.Store.(metrics.ErrorCounter)
	notifier, _ := s.Store.(store.Notifier) // other replicas to tell (PostgreSQL)
	s.Store = metrics.InstrumentStore(s.Store, reg)
	reg.MustRegister(&metrics.Backlog{Store: s.Store, Errors: errCounts, Now: s.now, Timeout: time.Second, Log: s.Log})
	icfg := identity.Config{
		SessionIdleTimeout: cfg.Session.IdleTimeout, SessionAbsoluteTimeout: cfg.Session.AbsoluteTimeout,
		TokenDefaultTTL: cfg.Tokens.DefaultTTL, TokenMaxTTL: cfg.Tokens.MaxTTL, AdminGroup: cfg.AdminGroup,
		Throttle: identity.ThrottleConfig{PairFailures: cfg.Login.PairFailures, MaxAccountFailures: cfg.Login.MaxAccountFailures,
			MaxAddressFailures: cfg.Login.MaxAddressFailures, MaxDelay: cfg.Login.MaxDelay, Window: cfg.Login.Window,
			AuditWindow: cfg.Login.AuditWindow},
	}
	s.Identity = identity.New(s.Store, icfg, s.Log, s.now)
	s.Authz = authz.New(s.Store, cfg.Environments, s.Log, s.now)
	s.Identity.SetAuthorizer(s.Authz)
	quorum := review.Quorum{procedure.RiskLow: cfg.Review.QuorumLow, procedure.RiskMedium: cfg.Review.QuorumMedium,
		procedure.RiskHigh: cfg.Review.QuorumHigh}
	s.Review = review.New(s.Store, quorum, s.Authz, s.Log, s.now)
	s.Review.KnownTargets = review.ConfiguredTargets(cfg.Notify)
	// The keys first, and checked against what is stored, before this
	// start writes anything.
	keyring, err := s.keyring()
	if err != nil {
		return err
	}
	if err := s.auditLog(); err != nil {
		return err
	}
	if err := s.checkKeys(ctx, keyring); err != nil {
		return err
	}
	pw, err := s.Identity.Bootstrap(ctx)
	if err != nil {
		return err
	}
	s.AdminPassword = pw
	if err := s.bootstrapPolicy(ctx, quorum); err != nil {
		return err
	}
	s.Secrets = secretstore.New(s.Store, keyring, s.Authz, s.now)
	s.Nodes = inventory.NewService(s.Store, s.Authz, cfg.Environments, s.now)
	if cfg.InventoryFile != "" {
		n, err := s.Nodes.SyncFile(ctx, cfg.InventoryFile)
		if err != nil {
			return fmt.Errorf("inventory_file: %w", err)
		}
		s.Log.Info("synced inventory", "file", cfg.InventoryFile, "changed", n)
	}
	// Each local step in a cgroup of its own (else a process group),
	// recorded, so that this start kills what a killed predecessor's
	// steps left running — never what a live replica's steps run.
	runsDir := filepath.Join(cfg.Data, "runs")
	containDir := filepath.Join(runsDir, ".contain")
	reaped, err := contain.Reap(containDir)
	if err != nil {
		s.Log.Warn("could not kill everything earlier Airlock processes left running; trying again at the next start", "dir", containDir, "err", err)
	}
	if reaped.Instances > 0 || reaped.Skipped > 0 {
		s.Log.Warn("killed what earlier Airlock processes' steps left running", "instances", reaped.Instances,
			"processes", reaped.Processes, "process_groups", reaped.Groups, "process_groups_left_alone", reaped.Skipped)
	}
	contained, err := contain.New(containDir, contain.Options{})
	if err != nil {
		return err
	}
	s.contain = contained
	if cg := contained.Cgroup(); cg != "" {
		s.Log.Info("local steps run in cgroups", "containment", "cgroup2", "cgroup", cg)
	} else {
		s.Log.Warn("local steps run in process groups: a process that leaves its group (setsid) escapes cancel, timeouts and the end of its step",
			"containment", "process_group", "reason", contained.Fallback())
	}
	// Working directories a killed predecessor kept for later runs.
	s.workDirs = &local.WorkDirs{}
	s.workDirs.Sweep(runsDir)
	rc := run.Config{Workers: cfg.Runs.Workers, ApprovalTTL: cfg.Runs.ApprovalTTL, HeartbeatInterval: cfg.Runs.HeartbeatInterval,
		HeartbeatTimeout: cfg.Runs.HeartbeatTimeout, MaxOutputBytes: int64(cfg.Runs.MaxOutputBytes), MaxAttempts: cfg.Runs.MaxAttempts,
		WorkDir: runsDir, OutputRetention: cfg.Runs.OutputRetention, SingleNode: cfg.Database.Driver != "postgres", TryEnvironments: cfg.TryEnvironments,
		Observer: metrics.NewRuns(reg)}
	s.Runs = run.New(s.Store, s.Authz, keyring, map[string]executor.Executor{
		store.TransportLocal: local.Executor{Contain: contained, Dirs: s.workDirs}, store.TransportSSH: sshexec.Executor{},
	}, rc, s.Log, s.now)
	if notifier != nil {
		// Replicas on one database wake each other's run viewers and
		// dispatchers and drop each other's cached principals at once.
		handlers := s.Runs.Notices(notifier)
		maps.Copy(handlers, s.Identity.Notices(notifier))
		s.listen = func(ctx context.Context) { notifier.Listen(ctx, handlers) }
	}
	s.Standing = standing.New(s.Store, s.Authz, s.Runs, standing.Config{Interval: cfg.Schedules.Interval, Grace: cfg.Schedules.Grace}, s.Log, s.now)
	s.Triggers = trigger.New(s.Standing, s.Store, s.Authz, keyring, s.Log, s.now)
	if err := s.buildNotify(); err != nil {
		return err
	}

	var provider *sso.Provider
	if cfg.OIDC.Enabled() {
		oc := cfg.OIDC
		if oc.RedirectURL == "" {
			oc.RedirectURL = strings.TrimRight(cfg.PublicURL, "/") + "/auth/oidc/callback"
		}
		if provider, err = sso.New(ctx, oc); err != nil {
			return err
		}
	}

	notifications := &notify.Service{Store: s.Store, Authz: s.Authz, Now: s.now, Dispatcher: s.Notify}
	h := &api.Handler{Identity: s.Identity, Review: s.Review, Authz: s.Authz, Runs: s.Runs, Standing: s.Standing, Triggers: s.Triggers, Audit: s.AuditLog, Nodes: s.Nodes, Secrets: s.Secrets, Notify: notifications, Store: s.Store, SSO: provider, Log: s.Log, Metrics: api.NewMetrics(reg),
		Secure: cfg.TLS.Cert != "", SessionMaxAge: int(cfg.Session.AbsoluteTimeout.Seconds()), Now: s.now}
	if s.Slack, err = s.wireChat(h); err != nil {
		return err
	}
	mux := http.NewServeMux()
	h.Register(mux)
	mux.Handle("GET /healthz", h.Wrap("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})))
	mux.Handle("GET /readyz", h.Wrap("GET /readyz", http.HandlerFunc(s.readyz)))
	mux.Handle("GET /metrics", h.Wrap("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	ui := &web.Handler{Identity: s.Identity, Review: s.Review, Authz: s.Authz, Runs: s.Runs, Standing: s.Standing, Triggers: s.Triggers, Store: s.Store, Audit: s.AuditLog, Nodes: s.Nodes, Secrets: s.Secrets, Notify: notifications, Log: s.Log, Environments: cfg.Environments,
		Secure: cfg.TLS.Cert != "", SSO: provider != nil, SessionMaxAge: int(cfg.Session.AbsoluteTimeout.Seconds()), Now: s.now}
	ui.Register(mux, h.Wrap)
	mux.Handle("/", h.Wrap("not found", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"code":"not_found","message":"no such endpoint"}}` + "\n"))
	})))
	s.handler = securityHeaders(cfg.TLS.Cert != "", mux)
	s.ready.Store(true)
	return nil
}

// checkKeys refuses a start whose keys are not the ones the stored data
// was made with — a replica or a restored server given another data
// directory's keys: the audit key must verify the newest stored
// checkpoint, and the master key must open a stored secret.
func (s *Server) checkKeys(ctx context.Context, kr *secret.Keyring) error {
	cps, err := s.Store.AuditCheckpoints(ctx)
	if err != nil {
		return err
	}
	if n := len(cps); n > 0 {
		c := cps[n-1]
		if _, err := note.Open([]byte(c.Note), note.VerifierList(s.AuditLog.Verifier)); err != nil {
			return fmt.Errorf("audit key %s does not verify the newest stored checkpoint (tree size %d, signed %s): "+
				"the log was signed with another key; give this server the key the other replicas (or the backup) have",
				s.auditKeyPath, c.Size, c.CreatedAt.UTC().Format(time.RFC3339))
		}
	}
	secrets, err := s.Store.SecretList(ctx)
	if err != nil {
		return err
	}
	if len(secrets) > 0 {
		rec := secrets[0]
		if _, err := kr.Open(rec.Ciphertext, []byte(rec.Name)); err != nil {
			return fmt.Errorf("master key %s cannot open the stored secret %q (sealed under key %s; this key is %s): "+
				"give this server the master key the other replicas (or the backup) have", s.masterKeyPath, rec.Name, rec.KeyID, kr.KeyID())
		}
	}
	return nil
}

// auditLog loads (or creates) the checkpoint key and sets up the log.
func (s *Server) auditLog() error {
	path := s.Config.Audit.KeyFile
	if path == "" {
		if err := os.MkdirAll(s.Config.Data, 0o700); err != nil {
			return err
		}
		path = filepath.Join(s.Config.Data, "audit.key")
	}
	s.auditKeyPath = path
	skey, vkey, created, err := audit.LoadOrCreateKey(path, s.Config.Audit.Origin)
	if err != nil {
		return fmt.Errorf("audit.key_file: %w", err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return fmt.Errorf("audit.key_file: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("audit.key_file: %w", err)
	}
	if created {
		s.AuditKeyCreated = vkey
	}
	l := &audit.Log{Store: s.Store, Signer: signer, Verifier: verifier, VerifierKey: vkey, Origin: s.Config.Audit.Origin,
		Every: int64(s.Config.Audit.CheckpointEvents), Interval: s.Config.Audit.CheckpointInterval, Logger: s.Log, Now: s.now}
	file := s.Config.Audit.CheckpointFile
	if hook := s.Config.Audit.CheckpointWebhook; hook != "" {
		s.checkpointHook = &webhook{URL: hook, Client: &http.Client{Timeout: 10 * time.Second}, Logger: s.Log}
	}
	if file != "" || s.checkpointHook != nil {
		l.Publish = func(n string) error {
			if s.checkpointHook != nil {
				s.checkpointHook.Publish(n) // retried in the background
			}
			if file == "" {
				return nil
			}
			fh, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			_, err = fh.WriteString(n + "\n")
			return errors.Join(err, fh.Close())
		}
	}
	s.AuditLog = l
	return nil
}

// keyring loads the master key: from the configuration, or from
// DATA/master.key, generated there at first start.
func (s *Server) keyring() (*secret.Keyring, error) {
	sc := s.Config.Secrets
	var key []byte
	var err error
	switch {
	case sc.MasterKey != "":
		s.masterKeyPath = "(secrets.master_key)"
		if key, err = secret.ParseKey(sc.MasterKey); err != nil {
			return nil, fmt.Errorf("secrets.master_key: %w", err)
		}
	case sc.MasterKeyFile != "":
		s.masterKeyPath = sc.MasterKeyFile
		b, rerr := os.ReadFile(sc.MasterKeyFile)
		if rerr != nil {
			return nil, fmt.Errorf("secrets.master_key_file: %w", rerr)
		}
		if key, err = secret.ParseKey(string(b)); err != nil {
			return nil, fmt.Errorf("secrets.master_key_file: %w", err)
		}
	default:
		if err := os.MkdirAll(s.Config.Data, 0o700); err != nil {
			return nil, err
		}
		path := filepath.Join(s.Config.Data, "master.key")
		s.masterKeyPath = path
		var created bool
		if key, created, err = secret.LoadOrCreateKeyFile(path); err != nil {
			return nil, fmt.Errorf("master key: %w", err)
		}
		if created {
			s.Log.Warn("generated a master key for secrets; back it up apart from the database, or set secrets.master_key_file", "path", path)
		}
	}
	return secret.NewKeyring(key)
}

// bootstrapPolicy installs the first policy on a fresh store: the
// configured file, or the default policy.
func (s *Server) bootstrapPolicy(ctx context.Context, quorum review.Quorum) error {
	file, text := "default policy", ""
	if s.Config.PolicyFile != "" {
		b, err := os.ReadFile(s.Config.PolicyFile)
		if err != nil {
			return fmt.Errorf("policy_file: %w", err)
		}
		file, text = s.Config.PolicyFile, string(b)
	} else {
		var groups []string
		for _, gs := range quorum {
			groups = append(groups, gs...)
		}
		text = authz.DefaultPolicy(s.Config.AdminGroup, groups)
	}
	installed, err := s.Authz.Bootstrap(ctx, file, text)
	if err != nil {
		return err
	}
	if installed {
		s.Log.Info("installed the first policy", "from", file)
	}
	return nil
}

// Handler is the complete HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if !s.ready.Load() {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	if err := s.Store.Ping(ctx); err != nil {
		// The reason, without the detail (addresses, paths) that goes to
		// the log: "the database is unreachable" or "… does not take writes".
		s.Log.Warn("readyz: not ready", "err", err)
		msg := airlock.ErrorMessage(err)
		if airlock.ErrorKind(err) == airlock.Internal {
			msg = "the database is unreachable"
		}
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	if v, err := s.Store.SchemaVersion(ctx); err != nil || v == 0 {
		http.Error(w, "migrations not applied", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ready\n"))
}

func securityHeaders(tlsOn bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		// No inline script or style anywhere; pages load their script and
		// stylesheet from /static and talk only to this origin.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("Cache-Control", "no-store")
		if tlsOn {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// Listen binds the configured address. Call before Serve; URL is valid
// after it.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if s.Config.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(s.Config.TLS.Cert, s.Config.TLS.Key)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls.cert: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	s.ln = ln
	return nil
}

// URL is the base URL the server answers on.
func (s *Server) URL() string {
	scheme := "http"
	if s.Config.TLS.Cert != "" {
		scheme = "https"
	}
	return scheme + "://" + s.ln.Addr().String()
}

// Serve serves until ctx is done, then shuts down gracefully: new
// connections are refused, in-flight requests get ShutdownTimeout to
// finish, runs in progress are stopped and recorded, and the store is
// closed.
func (s *Server) Serve(ctx context.Context) error {
	s.http = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn)}
	runsCtx, stopRuns := context.WithCancel(context.Background())
	runsDone := make(chan struct{})
	go func() { defer close(runsDone); s.Runs.Start(runsCtx) }()
	schedDone := make(chan struct{})
	go func() { defer close(schedDone); s.Standing.Start(runsCtx) }()
	// Refused webhook deliveries counted in a window that closes reach
	// the audit log even when no refusal follows.
	triggersDone := make(chan struct{})
	go func() { defer close(triggersDone); s.Triggers.Start(runsCtx) }()
	cpDone := make(chan struct{})
	go func() { defer close(cpDone); s.AuditLog.Run(runsCtx) }()
	// Failed-login windows close by time too: record their counts even
	// when their source never comes back.
	reportsDone := make(chan struct{})
	go func() {
		defer close(reportsDone)
		s.Identity.RunLoginReports(runsCtx, max(s.Config.Login.AuditWindow/4, time.Second))
	}()
	notifyDone := make(chan struct{})
	go func() {
		defer close(notifyDone)
		if s.Notify != nil {
			s.Notify.Run(runsCtx)
		}
	}()
	listenDone := make(chan struct{})
	go func() {
		defer close(listenDone)
		if s.listen != nil {
			s.listen(runsCtx)
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		s.Log.Info("shutting down", "timeout", s.Config.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), s.Config.ShutdownTimeout)
		defer cancel()
		err = s.http.Shutdown(sctx)
		if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
			err = e
		}
	}
	stopRuns()
	if s.Slack != nil {
		// Refusals still being counted reach the audit log.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.Slack.Close(sctx)
		cancel()
	}
	<-runsDone
	s.release()
	<-schedDone
	<-triggersDone
	<-cpDone
	<-reportsDone
	<-notifyDone
	<-listenDone
	if cerr := s.Store.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close releases the store of a server that was never served, and what
// its runs kept, should they have run (as in tests).
func (s *Server) Close() error {
	s.release()
	return s.Store.Close()
}

// release removes what local steps leave between runs, once none runs:
// the instance cgroup with the step cgroups kept for reuse, its record,
// and the kept working directories. A killed server leaves them to the
// next start.
func (s *Server) release() {
	if err := s.contain.Close(); err != nil {
		s.Log.Warn("could not remove the local steps' cgroups; the next start tries again", "err", err)
	}
	s.workDirs.Close()
}
