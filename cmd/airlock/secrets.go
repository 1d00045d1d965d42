package main

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/secret"
	"github.com/airlockhq/airlock/internal/secretstore"
)

func (a *app) secretsCmd() *cobra.Command {
	c := &cobra.Command{Use: "secrets", Short: "Manage secrets, write-only, and which procedures may use them (manageSecrets)"}
	c.AddCommand(a.secretsListCmd(), a.secretsSetCmd(), a.secretsScopeCmd(), a.secretsRmCmd())
	return c
}

// secretPath is the API path of a secret: its name's segments escaped,
// its slashes kept.
func secretPath(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/api/v1/secrets/" + strings.Join(parts, "/")
}

func (a *app) secretsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List secrets with their scopes (values are never shown)",
		Example: "  airlock secrets list\n  airlock secrets list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp struct {
				Items []*secretstore.Info `json:"items"`
			}
			if err := a.call(cmd.Context(), "GET", "/api/v1/secrets", nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tMAY BE USED BY\tUPDATED\tBY\tSCOPE SET BY")
				for _, s := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Scope, s.UpdatedAt.Format(time.RFC3339), s.UpdatedBy, s.ScopeUpdatedBy)
				}
				tw.Flush()
			})
		},
	}
}

// scopeFlags are --team and --procedure, shared by set and scope.
type scopeFlags struct {
	teams, procedures []string
}

func (f *scopeFlags) add(c *cobra.Command) {
	c.Flags().StringSliceVar(&f.teams, "team", nil, "procedures owned by this team may use the secret (repeatable)")
	c.Flags().StringSliceVar(&f.procedures, "procedure", nil, "this procedure may use the secret; a trailing * matches a prefix, as in db-* (repeatable)")
}

func (f *scopeFlags) given() bool { return len(f.teams)+len(f.procedures) > 0 }

func (f *scopeFlags) scope() secret.Scope {
	return secret.Scope{Teams: append([]string{}, f.teams...), Procedures: append([]string{}, f.procedures...)}
}

func (a *app) printScope(info *secretstore.Info) {
	if info.Scope.Empty() {
		fmt.Fprintf(a.stdout, "No procedure may use %s (a node credential needs no scope); to let one: airlock secrets scope %s --team TEAM\n", info.Name, info.Name)
		return
	}
	fmt.Fprintf(a.stdout, "%s may be used by %s.\n", info.Name, info.Scope)
}

func (a *app) secretsSetCmd() *cobra.Command {
	var fromFile string
	var sf scopeFlags
	c := &cobra.Command{
		Use:   "set NAME [--from-file FILE] [--team TEAM]... [--procedure NAME]...",
		Short: "Set a secret from standard input (or a file); the value is never shown again",
		Long: "Set a secret's value. With --team or --procedure, also set which procedures may name it in a step's\n" +
			"secrets: (as 'secrets scope' does); without them a replaced secret keeps its scope and a new one may be\n" +
			"used by no procedure until it is given one.",
		Example: "  airlock secrets set payments/api-token --team payments < token.txt\n" +
			"  airlock secrets set ssh/deploy --from-file ~/.ssh/airlock_deploy",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var value []byte
			var err error
			if fromFile != "" {
				value, err = os.ReadFile(fromFile)
			} else {
				var s string
				s, err = a.readSecret("Value: ", false, bufio.NewReader(a.stdin))
				value = []byte(s)
			}
			if err != nil {
				return err
			}
			req := api.SecretRequest{Value: string(value)}
			if sf.given() {
				sc := sf.scope()
				req.Scope = &sc
			}
			var info secretstore.Info
			if err := a.call(cmd.Context(), "PUT", secretPath(args[0]), req, &info); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Set %s.\n", args[0])
			a.printScope(&info)
			return nil
		},
	}
	c.Flags().StringVar(&fromFile, "from-file", "", "read the value from this file (e.g. an SSH private key)")
	sf.add(c)
	return c
}

func (a *app) secretsScopeCmd() *cobra.Command {
	var sf scopeFlags
	var none bool
	c := &cobra.Command{
		Use:   "scope NAME (--team TEAM | --procedure NAME)... | --none",
		Short: "Set which teams' and procedures' steps may use a secret",
		Long: "Replace a secret's scope: the procedures owned by the --team teams, and those named by --procedure,\n" +
			"may name it in a step's secrets:; --none lets no procedure use it. A proposal naming a secret outside\n" +
			"its scope is refused, and so is a run that would start after its scope was narrowed. The change is\n" +
			"audited (secret.scope).",
		Example: "  airlock secrets scope payments/api-token --team payments\n" +
			"  airlock secrets scope shared/smtp --procedure send-report --procedure notify-*\n" +
			"  airlock secrets scope payments/old-token --none",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if none == sf.given() {
				return usageError{fmt.Errorf("give --team or --procedure (repeatable), or --none to let no procedure use %s", args[0])}
			}
			var info secretstore.Info
			if err := a.call(cmd.Context(), "PATCH", secretPath(args[0]), api.SecretScopeRequest{Scope: sf.scope()}, &info); err != nil {
				return err
			}
			if a.output != "" && a.output != "table" {
				return a.print(info, nil)
			}
			a.printScope(&info)
			return nil
		},
	}
	sf.add(c)
	c.Flags().BoolVar(&none, "none", false, "let no procedure use the secret")
	return c
}

func (a *app) secretsRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Short:   "Remove a secret",
		Example: "  airlock secrets rm payments/old-token",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd.Context(), "DELETE", secretPath(args[0]), nil, nil)
		},
	}
}
