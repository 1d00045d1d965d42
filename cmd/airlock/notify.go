package main

import (
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/internal/api"
)

func (a *app) notifyCmd() *cobra.Command {
	c := &cobra.Command{Use: "notify", Short: "Notifications: test a channel, see and retry deliveries (admins)"}
	test := &cobra.Command{
		Use:     "test CHANNEL",
		Short:   "Send a test message through a channel: email or slack (to you), teams:NAME or webhook:NAME",
		Example: "  airlock notify test webhook:pagerduty\n  airlock notify test email",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.NotifyTestResponse
			if err := a.call(cmd.Context(), "POST", "/api/v1/notify/test", api.NotifyTestRequest{Channel: args[0]}, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				fmt.Fprintf(w, "A test message is on its way through %s (audit event %s).\nIf it does not arrive: airlock notify deliveries --status dead\n", args[0], resp.Event)
			})
		},
	}
	var status string
	var limit int
	list := &cobra.Command{
		Use:     "deliveries",
		Short:   "List deliveries, newest first (dead letters with their last error)",
		Example: "  airlock notify deliveries --status dead",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			if status != "" {
				q.Set("status", status)
			}
			var resp api.ListResponse[api.DeliveryJSON]
			if err := a.call(cmd.Context(), "GET", "/api/v1/notify/deliveries?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tKIND\tCHANNEL\tTO\tSTATUS\tATTEMPTS\tCREATED\tLAST ERROR")
				for _, d := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Kind, d.Channel, a.visible(d.Target), d.Status, d.Attempts,
						ago(d.CreatedAt), a.visible(d.LastError))
				}
				tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&status, "status", "", "pending, delivered or dead (default all)")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many (up to 1000)")
	retry := &cobra.Command{
		Use:     "retry ID",
		Short:   "Send a dead letter again",
		Example: "  airlock notify retry ntf_...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.DeliveryJSON
			if err := a.call(cmd.Context(), "POST", "/api/v1/notify/deliveries/"+url.PathEscape(args[0])+"/retry", nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) { fmt.Fprintf(w, "%s through %s is queued again.\n", resp.ID, resp.Channel) })
		},
	}
	c.AddCommand(test, list, retry)
	return c
}
