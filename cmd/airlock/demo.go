package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/server"
)

// DemoUser is a demo account as written to --credentials-file.
type DemoUser struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Groups   []string `json:"groups"`
	Role     string   `json:"role"`
}

// DemoCredentials is the --credentials-file document.
type DemoCredentials struct {
	URL   string     `json:"url"`
	Users []DemoUser `json:"users"`
}

// demoPeople are the demo's cast, one per role of DESIGN.md.
var demoPeople = []DemoUser{
	{Username: "alice", Groups: []string{"dev"}, Role: "developer: requests runs, authors procedures"},
	{Username: "bob", Groups: []string{"ops", "admins"}, Role: "operations: approves runs, reviews, administers"},
	{Username: "carol", Groups: []string{"security", "admins"}, Role: "security: reviews procedures, second admin"},
	{Username: "dana", Groups: []string{"compliance", "auditors"}, Role: "compliance: reviews, audits, exports evidence"},
	{Username: "erin", Groups: []string{"noc"}, Role: "NOC: runs restarts in production"},
}

func (a *app) demoCmd() *cobra.Command {
	var data, listen, credFile string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Start Airlock on SQLite with demo users",
		Long: "Start a server on a fresh temporary data directory (or --data) with SQLite, create the demo users\n" +
			"alice (dev), bob (ops), carol (security), dana (compliance) and erin (noc) with random passwords,\n" +
			"print the URL and the credentials, and serve until interrupted. A temporary data directory is\n" +
			"removed on exit.",
		Example: "  go run ./cmd/airlock demo\n  airlock demo --listen 127.0.0.1:0 --credentials-file /tmp/airlock-demo.json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := config.Default()
			cfg.Listen = listen
			if data == "" {
				dir, err := os.MkdirTemp("", "airlock-demo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				data = dir
			}
			cfg.Data = data
			if err := cfg.Validate(); err != nil {
				return configError(err)
			}
			return a.serve(cmd.Context(), cfg, func(s *server.Server) error {
				users, err := seedDemo(cmd.Context(), s)
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
	c.Flags().StringVar(&data, "data", "", "data directory to use instead of a fresh temporary one")
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "listen address (127.0.0.1:0 picks a free port)")
	c.Flags().StringVar(&credFile, "credentials-file", "", "also write the URL and credentials to this file as JSON (mode 0600)")
	return c
}

// seedDemo creates the demo users on a fresh store. On a data directory
// that already has them it changes nothing, and their passwords are the
// ones printed when they were created. Users are created concurrently:
// hashing their passwords is most of the demo's start-up time.
func seedDemo(ctx context.Context, s *server.Server) ([]DemoUser, error) {
	var (
		mu   sync.Mutex
		out  []DemoUser
		errs []error
		wg   sync.WaitGroup
	)
	for _, p := range demoPeople {
		if _, err := s.Store.UserGetByUsername(ctx, p.Username); err == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Password = identity.RandomPassword()
			_, err := s.Identity.CreateUser(ctx, audit.Actor{Name: "demo"}, identity.CreateUserParams{
				Username: p.Username, DisplayName: p.Username, Email: p.Username + "@demo.airlock.local",
				Password: p.Password, Groups: p.Groups,
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("demo user %s: %w", p.Username, err))
				return
			}
			out = append(out, p)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b DemoUser) int { return strings.Compare(a.Username, b.Username) })
	return out, nil
}

func (a *app) printDemo(c DemoCredentials, data string) {
	w := a.stdout
	fmt.Fprintf(w, "Airlock demo is running at %s (data in %s)\n\n", c.URL, data)
	if len(c.Users) == 0 {
		fmt.Fprintln(w, "The demo users already exist in this data directory; their passwords were printed when they were created.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tPASSWORD\tGROUPS\tROLE")
		for _, u := range c.Users {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", u.Username, u.Password, u.Groups, u.Role)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nTry:\n  airlock login --server %s --username alice\n  airlock whoami\n\nPress Ctrl-C to stop.\n", c.URL)
}
