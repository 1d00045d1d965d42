package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/demo"
	"github.com/airlockhq/airlock/internal/server"
)

func (a *app) demoCmd() *cobra.Command {
	var data, listen, credFile, databaseURL, cfgFile string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Start Airlock with demo users (SQLite, or PostgreSQL with --database-url)",
		Long: "Start a server on a fresh temporary data directory (or --data) with SQLite, create the demo users\n" +
			"alice (dev), bob (ops), carol (security), dana (compliance) and erin (noc) with random passwords,\n" +
			"load a small catalog of approved procedures plus one proposal waiting for review, print the URL\n" +
			"and the credentials, and serve until interrupted. A temporary data directory is removed on exit.\n\n" +
			"With --database-url the demo keeps its data in PostgreSQL instead. A second demo started with the\n" +
			"same --database-url and --data (the keys are in the data directory) joins it as a replica: it\n" +
			"finds the users and catalog there, serves the same API and works the same run queue.",
		Example: "  go run ./cmd/airlock demo\n  airlock demo --listen 127.0.0.1:0 --credentials-file /tmp/airlock-demo.json\n" +
			"  airlock demo --database-url 'postgres://postgres@127.0.0.1:5432/airlock?sslmode=disable' --data /tmp/airlock-ha\n" +
			"  airlock demo --database-url 'postgres://postgres@127.0.0.1:5432/airlock?sslmode=disable' --data /tmp/airlock-ha --listen 127.0.0.1:8081",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// A configuration file (--config, AIRLOCK_CONFIG) and AIRLOCK_*
			// variables apply to the demo too, under what the demo sets
			// (listen, data, policy and inventory): to try notifications,
			// say.
			cfg, err := config.Load(cfgFile, os.Environ())
			if err != nil {
				return configError(err)
			}
			cfg.Listen = listen
			if databaseURL != "" {
				cfg.Database.Driver, cfg.Database.URL = "postgres", databaseURL
			}
			if data == "" {
				dir, err := os.MkdirTemp("", "airlock-demo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				data = dir
			}
			cfg.Data = data
			// The demo's policy is installed at first start from a file
			// in the data directory, as an operator's would be.
			cfg.PolicyFile = filepath.Join(data, "policy.cedar")
			if _, err := os.Stat(cfg.PolicyFile); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(data, 0o700); err != nil {
					return err
				}
				if err := os.WriteFile(cfg.PolicyFile, []byte(demo.Policy), 0o600); err != nil {
					return err
				}
			}
			cfg.InventoryFile = filepath.Join(data, "inventory.yaml")
			if _, err := os.Stat(cfg.InventoryFile); errors.Is(err, os.ErrNotExist) {
				if err := os.WriteFile(cfg.InventoryFile, []byte(demo.Inventory), 0o600); err != nil {
					return err
				}
			}
			if err := cfg.Validate(); err != nil {
				return configError(err)
			}
			// Where sshd is installed, real SSH nodes on loopback too.
			var fleet *demo.Fleet
			if _, err := os.Stat(demo.SSHDPath); err == nil {
				// A directory of this process's own: a second demo on the
				// same data directory (a replica) must not rewrite the host
				// keys of the first one's nodes.
				dir, err := os.MkdirTemp(data, "sshd-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				if fleet, err = demo.StartSSHD(dir, 2); err != nil {
					fmt.Fprintf(a.stderr, "demo: no SSH nodes: %v\n", err)
					fleet = nil
				} else {
					defer fleet.Stop()
				}
			}
			return a.serve(cmd.Context(), cfg, func(s *server.Server) error {
				users, err := demo.Seed(cmd.Context(), demo.Services{Store: s.Store, Identity: s.Identity, Review: s.Review,
					Nodes: s.Nodes, Secrets: s.Secrets, SSH: fleet})
				if err != nil {
					return err
				}
				creds := DemoCredentials{URL: s.URL(), Users: users}
				a.printDemo(creds, data)
				if credFile != "" {
					b, _ := json.MarshalIndent(creds, "", "  ")
					if err := os.WriteFile(credFile, append(b, '\n'), 0o600); err != nil {
						return fmt.Errorf("--credentials-file: %w", err)
					}
					// WriteFile keeps the mode of an existing file.
					if err := os.Chmod(credFile, 0o600); err != nil {
						return fmt.Errorf("--credentials-file: %w", err)
					}
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&cfgFile, "config", os.Getenv("AIRLOCK_CONFIG"), "configuration file (YAML) under the demo's own settings, e.g. notify: (default $AIRLOCK_CONFIG)")
	c.Flags().StringVar(&data, "data", "", "data directory to use instead of a fresh temporary one")
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "listen address (127.0.0.1:0 picks a free port)")
	c.Flags().StringVar(&credFile, "credentials-file", "", "also write the URL and credentials to this file as JSON (mode 0600)")
	c.Flags().StringVar(&databaseURL, "database-url", "", "keep the demo's data in this PostgreSQL database instead of SQLite (postgres://…)")
	return c
}

// DemoCredentials is the --credentials-file document.
type DemoCredentials struct {
	URL   string      `json:"url"`
	Users []demo.User `json:"users"`
}

func (a *app) printDemo(c DemoCredentials, data string) {
	w := a.stdout
	fmt.Fprintf(w, "Airlock demo is running at %s (data in %s)\n\n", c.URL, data)
	if len(c.Users) == 0 {
		fmt.Fprintln(w, "The demo users already exist in this database; their passwords were printed when they were created.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tPASSWORD\tGROUPS\tROLE")
		for _, u := range c.Users {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", u.Username, u.Password, u.Groups, u.Role)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nTry:")
	if _, err := exec.LookPath("airlock"); err != nil {
		// Started with go run: the commands below need the CLI on the
		// PATH first.
		fmt.Fprintln(w, "  go install ./cmd/airlock      # from the repository: puts airlock in $(go env GOPATH)/bin, which must be on your PATH")
	}
	fmt.Fprintf(w, "  airlock login --server %s --username carol\n  airlock procedures list\n  airlock review list\n  airlock review show toggle-feature-flag@2\n\nPress Ctrl-C to stop.\n", c.URL)
}
