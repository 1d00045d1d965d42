package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/internal/api"
)

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func (a *app) tokensCmd() *cobra.Command {
	c := &cobra.Command{Use: "tokens", Short: "Manage your API tokens, or (--for) a service account's"}
	var ttl, forAccount string
	var scope []string
	// tokensPath is the caller's own tokens, or with --for a service
	// account's.
	tokensPath := func() string {
		if forAccount != "" {
			return "/api/v1/users/" + url.PathEscape(forAccount) + "/tokens"
		}
		return "/api/v1/tokens"
	}
	c.PersistentFlags().StringVar(&forAccount, "for", "", "a service account whose tokens to manage (its owner team, admins)")
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an API token; its secret is printed once",
		Example: "  airlock tokens create ci-deploy --ttl 720h\n  airlock tokens create payments-ci --scope propose:payments-*\n" +
			"  airlock tokens create github-actions --for payments-ci --scope propose --ttl 720h",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.NewTokenResponse
			if err := a.call(cmd.Context(), "POST", tokensPath(), api.CreateTokenRequest{Name: args[0], TTL: ttl, Scope: scope}, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				fmt.Fprintf(w, "%s\n\nToken %s (%s) expires %s. Store it now: it is not shown again.\n", resp.Token, resp.Info.ID, resp.Info.Name, ago(resp.Info.ExpiresAt))
			})
		},
	}
	create.Flags().StringVar(&ttl, "ttl", "", "lifetime, e.g. 720h (default: the server's tokens.default_ttl)")
	create.Flags().StringSliceVar(&scope, "scope", nil, "limit the token (repeatable): ACTION, ACTION:PROCEDURE or ACTION:PROCEDURE@ENV, e.g. propose or run:flush-cache@staging")
	list := &cobra.Command{
		Use:     "list",
		Short:   "List your API tokens",
		Example: "  airlock tokens list -o json\n  airlock tokens list --for payments-ci",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.ListResponse[api.TokenJSON]
			if err := a.call(cmd.Context(), "GET", tokensPath(), nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
				for _, t := range resp.Items {
					scope := strings.Join(t.Scope, ",")
					if scope == "" {
						scope = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, scope, ago(t.CreatedAt), ago(t.ExpiresAt), ago(t.LastUsedAt), ago(t.RevokedAt))
				}
				tw.Flush()
			})
		},
	}
	revoke := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke an API token",
		Example: "  airlock tokens revoke tok_01jd5...\n  airlock tokens revoke tok_01jd5... --for payments-ci",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.call(cmd.Context(), "DELETE", tokensPath()+"/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Revoked %s.\n", args[0])
			return nil
		},
	}
	c.AddCommand(create, list, revoke)
	return c
}

func (a *app) usersCmd() *cobra.Command {
	c := &cobra.Command{Use: "users", Short: "Manage users (admins)"}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List users and their groups",
		Example: "  airlock users list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.ListResponse[api.UserJSON]
			if err := a.call(cmd.Context(), "GET", "/api/v1/users", nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tKIND\tOWNER TEAM\tID\tGROUPS\tSSO\tCREATED")
				for _, u := range resp.Items {
					owner := u.OwnerTeam
					if owner == "" {
						owner = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\n", u.Username, u.Kind, owner, u.ID, strings.Join(u.Groups, ","), u.SSO, ago(u.CreatedAt))
				}
				tw.Flush()
			})
		},
	}
	var groups []string
	var display, email, ownerTeam string
	var service bool
	create := &cobra.Command{
		Use:   "create USERNAME",
		Short: "Propose a local user or a service account; created when another admin approves",
		Long: "Propose a local user or, with --service and --owner-team, a service account: a non-human account\n" +
			"that never signs in, approves or reviews, and acts only through API tokens that members of its\n" +
			"owner team or admins make for it (airlock tokens create --for USERNAME).",
		Example: "  airlock users create frank --group dev --group qa\n  airlock users create payments-ci --service --owner-team payments --group dev",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.CreateUserRequest{Username: args[0], DisplayName: display, Email: email, Groups: groups, OwnerTeam: ownerTeam}
			if service {
				req.Kind = "service"
			}
			return a.propose(cmd, "/api/v1/users", req)
		},
	}
	create.Flags().StringSliceVarP(&groups, "group", "g", nil, "group to add the user to (repeatable)")
	create.Flags().BoolVar(&service, "service", false, "propose a service account (needs --owner-team)")
	create.Flags().StringVar(&ownerTeam, "owner-team", "", "the group that owns the service account and makes its tokens")
	create.Flags().StringVar(&display, "display-name", "", "display name")
	create.Flags().StringVar(&email, "email", "", "email address")
	disable := &cobra.Command{
		Use:     "disable USERNAME",
		Short:   "Disable a user at once: ends their sessions and revokes their API tokens",
		Example: "  airlock users disable frank",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.call(cmd.Context(), "POST", "/api/v1/users/"+args[0]+"/disable", nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s disabled.\n", args[0])
			return nil
		},
	}
	enable := &cobra.Command{
		Use:     "enable USERNAME",
		Short:   "Propose enabling a disabled user again; in force when another admin approves",
		Example: "  airlock users enable frank",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.propose(cmd, "/api/v1/users/"+args[0]+"/enable", nil)
		},
	}
	reset := &cobra.Command{
		Use:   "reset-password USERNAME",
		Short: "Propose a one-time password for a local user; in force when another admin approves",
		Long: "Propose resetting a local user's password. When another admin approves, the approver (never you)\n" +
			"receives a one-time password to hand over; the user must change it at their next sign-in, and their\n" +
			"sessions and API tokens end. Not for users who sign in with SSO, nor for service accounts.",
		Example: "  airlock users reset-password frank",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.propose(cmd, "/api/v1/users/"+args[0]+"/reset-password", nil)
		},
	}
	c.AddCommand(list, create, disable, enable, reset, a.userChangesCmd())
	return c
}

// propose sends a user change and says what happens next.
func (a *app) propose(cmd *cobra.Command, path string, body any) error {
	var resp api.UserChangeResponse
	if err := a.call(cmd.Context(), "POST", path, body, &resp); err != nil {
		return err
	}
	return a.print(resp, func(w io.Writer) { a.printChange(w, resp) })
}

func (a *app) printChange(w io.Writer, resp api.UserChangeResponse) {
	c := resp.Change
	switch {
	case c.Status == "pending":
		fmt.Fprintf(w, "Proposed %s: %s.\nIt takes effect when another admin approves it: airlock users changes approve %s\n", c.ID, c.Summary, c.ID)
	case c.Status == "approved" && c.DecidedBy == c.Author:
		fmt.Fprintf(w, "Done: %s (%s). It took effect at once: no other admin could approve it.\n", c.Summary, c.ID)
	default:
		fmt.Fprintf(w, "%s %s: %s.\n", c.ID, c.Status, c.Summary)
	}
	if resp.OneTimePassword != "" {
		fmt.Fprintf(w, "One-time password for %s, to hand over and be changed at first login:\n\n    %s\n", c.Username, resp.OneTimePassword)
		if c.Kind == "reset_password" {
			fmt.Fprintf(w, "%s's sessions ended and their API tokens are revoked.\n", c.Username)
		}
	}
	if c.Status == "approved" && c.AccountKind == "service" {
		fmt.Fprintf(w, "Service account %s has no password. Its owner team (%s) or an admin makes its tokens:\n\n    airlock tokens create NAME --for %s --scope propose --ttl 720h\n",
			c.Username, c.OwnerTeam, c.Username)
	}
}

func (a *app) userChangesCmd() *cobra.Command {
	c := &cobra.Command{Use: "changes", Short: "Proposed user changes: list, approve, reject, withdraw"}
	var status string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List proposed user changes (pending by default)",
		Example: "  airlock users changes list\n  airlock users changes list --status all",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := "?status=" + url.QueryEscape(status)
			if status == "all" {
				q = ""
			}
			var resp api.ListResponse[*api.UserChangeJSON]
			if err := a.call(cmd.Context(), "GET", "/api/v1/user-changes"+q, nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tCHANGE\tAUTHOR\tSTATUS\tDECIDED BY\tCREATED")
				for _, c := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, a.visible(c.Summary), c.Author, c.Status, c.DecidedBy, ago(c.CreatedAt))
				}
				tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&status, "status", "pending", "pending, approved, rejected, withdrawn or all")
	var comment string
	decide := func(verb, short string) *cobra.Command {
		cmd := &cobra.Command{
			Use:     verb + " ID",
			Short:   short,
			Example: "  airlock users changes " + verb + " uch_... --comment 'checked with the team lead'",
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var resp api.UserChangeResponse
				if err := a.call(cmd.Context(), "POST", "/api/v1/user-changes/"+args[0]+"/"+verb, api.UserChangeDecisionRequest{Comment: comment}, &resp); err != nil {
					return err
				}
				return a.print(resp, func(w io.Writer) { a.printChange(w, resp) })
			},
		}
		cmd.Flags().StringVar(&comment, "comment", "", "why (required to reject)")
		return cmd
	}
	withdraw := &cobra.Command{
		Use:     "withdraw ID",
		Short:   "Withdraw your own proposed change",
		Example: "  airlock users changes withdraw uch_...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.UserChangeJSON
			if err := a.call(cmd.Context(), "POST", "/api/v1/user-changes/"+args[0]+"/withdraw", nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) { fmt.Fprintf(w, "%s withdrawn: %s.\n", resp.ID, resp.Summary) })
		},
	}
	c.AddCommand(list, decide("approve", "Approve a change another admin proposed (a new user's one-time password is shown once)"),
		decide("reject", "Reject a proposed change, with --comment"), withdraw)
	return c
}

func (a *app) groupsCmd() *cobra.Command {
	c := &cobra.Command{Use: "groups", Short: "Manage group membership (admins)"}
	add := &cobra.Command{
		Use:     "add-member GROUP USERNAME",
		Short:   "Propose adding a user to a group (created if missing); in force when another admin approves",
		Example: "  airlock groups add-member ops bob",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.propose(cmd, "/api/v1/groups/"+args[0]+"/members", api.MemberRequest{Username: args[1]})
		},
	}
	remove := &cobra.Command{
		Use:     "remove-member GROUP USERNAME",
		Short:   "Remove a user from a group",
		Example: "  airlock groups remove-member ops bob",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.call(cmd.Context(), "DELETE", "/api/v1/groups/"+args[0]+"/members/"+args[1], nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Removed %s from %s.\n", args[1], args[0])
			return nil
		},
	}
	c.AddCommand(add, remove)
	return c
}
