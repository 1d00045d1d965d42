package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/server"
	"github.com/airlockhq/airlock/internal/strictyaml"
)

type serveFlags struct {
	config string
	listen string
	data   string
}

func (f *serveFlags) register(c *cobra.Command) {
	c.Flags().StringVarP(&f.config, "config", "c", os.Getenv("AIRLOCK_CONFIG"), "configuration file (YAML); env AIRLOCK_CONFIG")
	c.Flags().StringVar(&f.listen, "listen", "", "listen address (default 127.0.0.1:8080); env AIRLOCK_LISTEN")
	c.Flags().StringVar(&f.data, "data", "", "data directory (default ./airlock-data); env AIRLOCK_DATA")
}

// load builds the configuration: defaults < file < AIRLOCK_* < flags.
func (f *serveFlags) load(c *cobra.Command) (config.Config, error) {
	cfg, err := config.Load(f.config, os.Environ())
	if err != nil {
		return cfg, configError(err)
	}
	if c.Flags().Changed("listen") {
		cfg.Listen = f.listen
	}
	if c.Flags().Changed("data") {
		cfg.Data = f.data
	}
	if err := cfg.Validate(); err != nil {
		return cfg, configError(err)
	}
	return cfg, nil
}

func configError(err error) error {
	var es strictyaml.Errors
	if errors.As(err, &es) {
		lines := make([]string, len(es))
		for i, e := range es {
			lines[i] = e.Error()
		}
		return fmt.Errorf("config: %s", strings.Join(lines, "\nairlock: config: "))
	}
	return fmt.Errorf("config: %w", err)
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (a *app) serveCmd() *cobra.Command {
	var f serveFlags
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the Airlock server",
		Long: "Run the Airlock server with the configuration from --config, AIRLOCK_* environment variables and flags.\n" +
			"On a fresh data directory it creates the 'admin' user and prints its one-time password once.\n" +
			"SIGTERM or Ctrl-C stops it gracefully: in-flight requests finish first.",
		Example: "  airlock serve --config /etc/airlock/airlock.yaml\n  AIRLOCK_DATABASE_DRIVER=postgres AIRLOCK_DATABASE_URL=postgres://airlock@db/airlock airlock serve",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			return a.serve(cmd.Context(), cfg, nil)
		},
	}
	f.register(c)
	return c
}

// serve runs a server until ctx ends. started, when set, runs once the
// server is serving (the demo seeds its users and prints its banner
// there); if it fails, the server stops.
func (a *app) serve(ctx context.Context, cfg config.Config, started func(s *server.Server) error) error {
	log := newLogger(cfg, a.stderr)
	s, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := s.Listen(); err != nil {
		s.Close()
		return err
	}
	log.Info("airlock listening", "url", s.URL(), "driver", cfg.Database.Driver, "version", version)
	if s.AuditKeyCreated != "" {
		fmt.Fprintf(a.stdout, "\nCreated the audit checkpoint signing key. Its public key, for verifying checkpoints and evidence:\n\n    %s\n\n", s.AuditKeyCreated)
	}
	if s.AdminPassword != "" {
		fmt.Fprintf(a.stdout, "\nCreated user 'admin' with one-time password:\n\n    %s\n\nIt is shown only now and must be changed at first login.\n\n", s.AdminPassword)
	}
	if addr := os.Getenv("AIRLOCK_PPROF_LISTEN"); addr != "" {
		// Profiling for operators and benchmarks: Go's pprof handlers on a
		// listener of their own, never the API's (docs/operations.md).
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.Close()
			return fmt.Errorf("AIRLOCK_PPROF_LISTEN: %w", err)
		}
		log.Warn("profiling endpoints listening", "addr", ln.Addr().String())
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		go http.Serve(ln, mux)
		defer ln.Close()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	if started != nil {
		if err := started(s); err != nil {
			cancel()
			<-served
			return err
		}
	}
	// Start-up hashed passwords (argon2id allocates 19 MiB each); hand
	// that memory back rather than idle at the high-water mark.
	debug.FreeOSMemory()
	return <-served
}
