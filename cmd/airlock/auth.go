package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/client"
)

func (a *app) client() (*client.Client, error) { return client.FromProfile(a.profile) }

// call does one API call with the current profile's client.
func (a *app) call(ctx context.Context, method, path string, in, out any) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	return cl.Do(ctx, method, path, in, out)
}

// readSecret reads one line from stdin when it is not a terminal (or when
// fromStdin), else prompts without echo.
func (a *app) readSecret(prompt string, fromStdin bool, r *bufio.Reader) (string, error) {
	if f, ok := a.stdin.(*os.File); ok && !fromStdin && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		return string(b), err
	}
	line, err := r.ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", fmt.Errorf("reading %s from standard input: %w", strings.TrimSuffix(strings.ToLower(prompt), ": "), err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (a *app) loginCmd() *cobra.Command {
	var server, username string
	var passwordStdin bool
	c := &cobra.Command{
		Use:   "login",
		Short: "Log in and store an API token in a profile",
		Long: "Exchange a username and password for an API token and store it, with the server URL, in\n" +
			"$AIRLOCK_CONFIG_DIR/profiles.json (default ~/.config/airlock, mode 0600).",
		Example: "  airlock login --server https://airlock.example.com --username alice\n  echo \"$PW\" | airlock login --server http://127.0.0.1:8080 --username alice --password-stdin",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := client.LoadProfiles()
			if err != nil {
				return err
			}
			name := a.profile
			if name == "" {
				name = ps.Current
			}
			if server == "" {
				if p := ps.Profiles[name]; p != nil {
					server = p.Server
				}
				if v := os.Getenv("AIRLOCK_SERVER"); v != "" {
					server = v
				}
			}
			if server == "" {
				return usageError{fmt.Errorf("--server is required for the first login")}
			}
			if username == "" {
				return usageError{fmt.Errorf("--username is required")}
			}
			pw, err := a.readSecret("Password: ", passwordStdin, bufio.NewReader(a.stdin))
			if err != nil {
				return err
			}
			host, _ := os.Hostname()
			c := &client.Client{Server: strings.TrimRight(server, "/")}
			var resp api.NewTokenResponse
			if err := c.Do(cmd.Context(), "POST", "/api/v1/auth/token",
				api.LoginRequest{Username: username, Password: pw, TokenName: "cli@" + host}, &resp); err != nil {
				return err
			}
			ps.Profiles[name] = &client.Profile{Server: c.Server, Username: username, Token: resp.Token, TokenID: resp.Info.ID}
			was := ps.Current
			ps.Current = name
			if err := ps.Save(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Logged in to %s as %s (profile %q, token expires %s).\n", c.Server, username, name, resp.Info.ExpiresAt.Format("2006-01-02"))
			if was != name && ps.Profiles[was] != nil {
				fmt.Fprintf(a.stdout, "Profile %q is now the current one (it was %q): commands without --profile act as %s. Switch back with: airlock profiles use %s\n",
					name, was, username, was)
			} else {
				fmt.Fprintf(a.stdout, "Profile %q is the current one: commands without --profile act as %s.\n", name, username)
			}
			if resp.User != nil && resp.User.MustChangePassword {
				fmt.Fprintln(a.stdout, "You must change your password before anything else: airlock passwd")
			}
			return nil
		},
	}
	c.Flags().StringVar(&server, "server", "", "server URL, e.g. http://127.0.0.1:8080")
	c.Flags().StringVarP(&username, "username", "u", "", "username")
	c.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	return c
}

func (a *app) profilesCmd() *cobra.Command {
	c := &cobra.Command{Use: "profiles", Short: "List login profiles and choose the current one"}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the login profiles; * marks the current one",
		Example: "  airlock profiles list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := client.LoadProfiles()
			if err != nil {
				return err
			}
			type row struct {
				Name     string `json:"name"`
				Server   string `json:"server"`
				Username string `json:"username"`
				Current  bool   `json:"current"`
				LoggedIn bool   `json:"logged_in"`
			}
			rows := []row{}
			for name, p := range ps.Profiles {
				rows = append(rows, row{Name: name, Server: p.Server, Username: p.Username, Current: name == ps.Current, LoggedIn: p.Token != ""})
			}
			sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
			return a.print(rows, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "\tPROFILE\tUSER\tSERVER\tTOKEN")
				for _, r := range rows {
					mark, tok := "", "logged out"
					if r.Current {
						mark = "*"
					}
					if r.LoggedIn {
						tok = "yes"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, r.Name, r.Username, r.Server, tok)
				}
				tw.Flush()
			})
		},
	}
	use := &cobra.Command{
		Use:     "use PROFILE",
		Short:   "Make a profile the current one",
		Example: "  airlock profiles use alice",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := client.LoadProfiles()
			if err != nil {
				return err
			}
			p := ps.Profiles[args[0]]
			if p == nil {
				names := make([]string, 0, len(ps.Profiles))
				for n := range ps.Profiles {
					names = append(names, n)
				}
				sort.Strings(names)
				return usageError{fmt.Errorf("no profile %q (profiles: %s); create one with airlock login --profile %s", args[0], strings.Join(names, ", "), args[0])}
			}
			ps.Current = args[0]
			if err := ps.Save(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Profile %q is now the current one: commands without --profile act as %s on %s.\n", args[0], p.Username, p.Server)
			return nil
		},
	}
	c.AddCommand(list, use)
	return c
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "logout",
		Short:   "Revoke the profile's token and forget it",
		Example: "  airlock logout",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "POST", "/api/v1/auth/logout", nil, nil); err != nil {
				fmt.Fprintf(a.stderr, "warning: the server did not revoke the token: %v\n", err)
			}
			ps, err := client.LoadProfiles()
			if err != nil {
				return err
			}
			name := a.profile
			if name == "" {
				name = ps.Current
			}
			if p := ps.Profiles[name]; p != nil {
				p.Token, p.TokenID = "", ""
			}
			if err := ps.Save(); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Logged out.")
			return nil
		},
	}
}

func (a *app) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "whoami",
		Short:   "Show who the current credentials belong to",
		Example: "  airlock whoami -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var me api.MeResponse
			if err := c.Do(cmd.Context(), "GET", "/api/v1/me", nil, &me); err != nil {
				return err
			}
			return a.print(me, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "user\t%s (%s)\n", me.Username, me.ID)
				fmt.Fprintf(tw, "groups\t%s\n", strings.Join(me.Groups, ", "))
				fmt.Fprintf(tw, "server\t%s\n", c.Server)
				fmt.Fprintf(tw, "via\t%s\n", me.Via)
				if me.MustChangePassword {
					fmt.Fprintf(tw, "note\tyou must change your password: airlock passwd\n")
				}
				tw.Flush()
			})
		},
	}
}

func (a *app) passwdCmd() *cobra.Command {
	var fromStdin, revokeTokens bool
	c := &cobra.Command{
		Use:   "passwd",
		Short: "Change your password",
		Long: "Change your password. On a terminal it prompts; with --password-stdin (or when standard input\n" +
			"is not a terminal) it reads two lines: the current password, then the new one.\n" +
			"Your other browser sessions are signed out. On a terminal it also asks whether to revoke all\n" +
			"your API tokens (this CLI's included); --revoke-tokens (or --revoke-tokens=false) answers\n" +
			"without asking.",
		Example: "  airlock passwd\n  printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | airlock passwd --password-stdin --revoke-tokens",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			r := bufio.NewReader(a.stdin)
			cur, err := a.readSecret("Current password: ", fromStdin, r)
			if err != nil {
				return err
			}
			next, err := a.readSecret("New password: ", fromStdin, r)
			if err != nil {
				return err
			}
			revoke := revokeTokens
			if !cmd.Flags().Changed("revoke-tokens") && !fromStdin && a.terminal() {
				if revoke, err = a.askRevokeTokens(cmd.Context(), c, r); err != nil {
					return err
				}
			}
			// With revoke, the token this request is made with is revoked
			// too: nothing may be asked of the server after it.
			if err := c.Do(cmd.Context(), "POST", "/api/v1/auth/password", api.PasswordRequest{CurrentPassword: cur, NewPassword: next,
				RevokeTokens: revoke}, nil); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Password changed. Your other browser sessions were signed out.")
			if revoke {
				fmt.Fprintln(a.stdout, "All your API tokens were revoked, this CLI's too: sign in again with airlock login.")
			}
			return nil
		},
	}
	c.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the current and new password from standard input, one per line")
	c.Flags().BoolVar(&revokeTokens, "revoke-tokens", false, "also revoke all your API tokens, this CLI's included, without asking")
	return c
}

// terminal reports whether standard input is a terminal.
func (a *app) terminal() bool {
	f, ok := a.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// askRevokeTokens asks whether to revoke the caller's live API tokens
// (none: it does not ask).
func (a *app) askRevokeTokens(ctx context.Context, c *client.Client, r *bufio.Reader) (bool, error) {
	var toks api.ListResponse[api.TokenJSON]
	if err := c.Do(ctx, "GET", "/api/v1/tokens", nil, &toks); err != nil {
		return false, err
	}
	live := 0
	for _, t := range toks.Items {
		if t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || time.Now().Before(t.ExpiresAt)) {
			live++
		}
	}
	if live == 0 {
		return false, nil
	}
	plural := "s"
	if live == 1 {
		plural = ""
	}
	fmt.Fprintf(a.stderr, "Also revoke your %d API token%s (this CLI's included)? [y/N] ", live, plural)
	line, err := r.ReadString('\n')
	if err != nil && line == "" {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes", nil
}
