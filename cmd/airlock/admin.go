package main

import (
	"fmt"
	"io"
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
	c := &cobra.Command{Use: "tokens", Short: "Manage your API tokens"}
	var ttl string
	create := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create an API token; its secret is printed once",
		Example: "  airlock tokens create ci-deploy --ttl 720h",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.NewTokenResponse
			if err := a.call(cmd.Context(), "POST", "/api/v1/tokens", api.CreateTokenRequest{Name: args[0], TTL: ttl}, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				fmt.Fprintf(w, "%s\n\nToken %s (%s) expires %s. Store it now: it is not shown again.\n", resp.Token, resp.Info.ID, resp.Info.Name, ago(resp.Info.ExpiresAt))
			})
		},
	}
	create.Flags().StringVar(&ttl, "ttl", "", "lifetime, e.g. 720h (default: the server's tokens.default_ttl)")
	list := &cobra.Command{
		Use:     "list",
		Short:   "List your API tokens",
		Example: "  airlock tokens list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.ListResponse[api.TokenJSON]
			if err := a.call(cmd.Context(), "GET", "/api/v1/tokens", nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
				for _, t := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, ago(t.CreatedAt), ago(t.ExpiresAt), ago(t.LastUsedAt), ago(t.RevokedAt))
				}
				tw.Flush()
			})
		},
	}
	revoke := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke an API token",
		Example: "  airlock tokens revoke tok_01jd5...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.call(cmd.Context(), "DELETE", "/api/v1/tokens/"+args[0], nil, nil); err != nil {
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
				fmt.Fprintln(tw, "USERNAME\tID\tGROUPS\tSSO\tCREATED")
				for _, u := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", u.Username, u.ID, strings.Join(u.Groups, ","), u.SSO, ago(u.CreatedAt))
				}
				tw.Flush()
			})
		},
	}
	var groups []string
	var display, email string
	create := &cobra.Command{
		Use:     "create USERNAME",
		Short:   "Create a local user with a one-time password",
		Example: "  airlock users create frank --group dev --group qa",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.CreateUserResponse
			if err := a.call(cmd.Context(), "POST", "/api/v1/users", api.CreateUserRequest{Username: args[0], DisplayName: display, Email: email, Groups: groups}, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				fmt.Fprintf(w, "Created %s (%s). One-time password, to be changed at first login:\n\n    %s\n", resp.User.Username, resp.User.ID, resp.OneTimePassword)
			})
		},
	}
	create.Flags().StringSliceVarP(&groups, "group", "g", nil, "group to add the user to (repeatable)")
	create.Flags().StringVar(&display, "display-name", "", "display name")
	create.Flags().StringVar(&email, "email", "", "email address")
	state := func(verb, short string) *cobra.Command {
		return &cobra.Command{
			Use:     verb + " USERNAME",
			Short:   short,
			Example: "  airlock users " + verb + " frank",
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := a.call(cmd.Context(), "POST", "/api/v1/users/"+args[0]+"/"+verb, nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "%s %sd.\n", args[0], verb)
				return nil
			},
		}
	}
	c.AddCommand(list, create,
		state("disable", "Disable a user: ends their sessions and revokes their API tokens"),
		state("enable", "Enable a disabled user again"))
	return c
}

func (a *app) groupsCmd() *cobra.Command {
	c := &cobra.Command{Use: "groups", Short: "Manage group membership (admins)"}
	add := &cobra.Command{
		Use:     "add-member GROUP USERNAME",
		Short:   "Add a user to a group (the group is created if missing)",
		Example: "  airlock groups add-member ops bob",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.call(cmd.Context(), "POST", "/api/v1/groups/"+args[0]+"/members", api.MemberRequest{Username: args[1]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Added %s to %s.\n", args[1], args[0])
			return nil
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
