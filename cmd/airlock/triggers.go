package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/internal/api"
)

func (a *app) triggersCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "triggers",
		Short: "Event triggers: webhooks (Alertmanager, PagerDuty, any signed JSON) that request runs as a service account",
		Long: "A trigger is an inbound webhook, /api/v1/hooks/NAME, authenticated by a Standard Webhooks signature or a\n" +
			"bearer secret. Each alert or event it receives is mapped by JSONPath expressions to a procedure's parameters\n" +
			"and requested as a run by the trigger's service account, through policy: queued where the account may run it\n" +
			"without approval, pending a person's approval where the procedure or policy requires one. A trigger is\n" +
			"proposed by a member of the account's owner team and approved once by someone else; a new version of the\n" +
			"procedure suspends it until it is approved again. See docs/triggers.md.",
	}
	c.AddCommand(a.triggersListCmd(), a.triggerShowCmd(), a.triggerProposeCmd(),
		a.triggerDecideCmd("approve"), a.triggerDecideCmd("deny"),
		a.triggerChangeCmd("pause"), a.triggerChangeCmd("resume"), a.triggerChangeCmd("delete"))
	return c
}

func triggerPath(name string) string { return "/api/v1/triggers/" + url.PathEscape(name) }

func (a *app) triggersListCmd() *cobra.Command {
	var status string
	c := &cobra.Command{
		Use:     "list",
		Short:   "List the triggers of procedures you may see",
		Example: "  airlock triggers list\n  airlock triggers list --status suspended",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if status != "" {
				q.Set("status", status)
			}
			var resp api.ListResponse[*api.TriggerJSON]
			if err := a.call(cmd.Context(), "GET", "/api/v1/triggers?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tPROCEDURE\tENV\tPRESET\tAUTH\tACCOUNT\tSTATUS\tPROPOSER")
				for _, t := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Procedure, t.Environment, t.Preset, t.Auth, t.Account, t.Status, t.Proposer)
				}
				tw.Flush()
			})
		},
	}
	c.Flags().StringVar(&status, "status", "", "only triggers with this status: pending_approval, active, paused, suspended, denied or deleted")
	return c
}

func (a *app) triggerShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a trigger: what is approved, its mapping, approvals and latest deliveries (never its secret)",
		Example: "  airlock triggers show api-down-staging\n  airlock triggers show api-down-staging -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var t api.TriggerJSON
			if err := a.call(cmd.Context(), "GET", triggerPath(args[0]), nil, &t); err != nil {
				return err
			}
			return a.print(t, func(w io.Writer) {
				printTrigger(w, &t)
				printTriggerEvents(w, &t)
			})
		},
	}
}

func (a *app) triggerProposeCmd() *cobra.Command {
	var req api.TriggerRequest
	var mapping []string
	c := &cobra.Command{
		Use:   "propose --name NAME --procedure P --env ENV --account SERVICE-ACCOUNT --map PARAM=JSONPATH...",
		Short: "Propose a trigger; it takes deliveries once someone else approves it. Prints its secret, once",
		Long: "Propose an event trigger. You must be someone policy lets run or request the procedure in the environment,\n" +
			"and a member of the service account's owner team (or an admin).\n" +
			"--preset: generic (default; the JSONPaths select from the whole body), alertmanager (each of $.alerts is\n" +
			"one alert, the JSONPaths select from the alert, e.g. $.labels.service) or pagerduty (V3 webhooks; the\n" +
			"JSONPaths select from $.event, e.g. $.data.title).\n" +
			"--auth: hmac (default; Standard Webhooks signatures) or bearer (Authorization: Bearer SECRET).\n" +
			"The secret is printed once: put it in the sender's configuration now; it cannot be read again.",
		Example: "  airlock triggers propose --name api-down-staging --procedure restart-service --env staging \\\n" +
			"      --account alertmanager --preset alertmanager --auth bearer \\\n" +
			"      --map service='$.labels.service' --map ticket='$.annotations.ticket'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range []struct{ flag, v string }{{"--name", req.Name}, {"--procedure", req.Procedure}, {"--env", req.Environment}, {"--account", req.Account}} {
				if f.v == "" {
					return usageError{fmt.Errorf("%s is required", f.flag)}
				}
			}
			req.Mapping = map[string]string{}
			for _, m := range mapping {
				k, v, ok := strings.Cut(m, "=")
				if !ok || k == "" || v == "" {
					return usageError{fmt.Errorf("--map %q: expected PARAM=JSONPATH", m)}
				}
				req.Mapping[k] = v
			}
			var resp api.NewTriggerResponse
			if err := a.call(cmd.Context(), "POST", "/api/v1/triggers", req, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				printTrigger(w, resp.Trigger)
				fmt.Fprintf(w, "\nSecret (shown once; it cannot be read again):\n  %s\n", resp.Secret)
				fmt.Fprintf(w, "\n%s waits for %d approval(s) from someone else. Approvers run:\n  airlock triggers approve %s\n",
					resp.Trigger.Name, resp.Trigger.ApprovalsRequired, resp.Trigger.Name)
			})
		},
	}
	c.Flags().StringVar(&req.Name, "name", "", "the trigger's name: lower-case letters, digits and '-' (required)")
	c.Flags().StringVar(&req.Procedure, "procedure", "", "procedure to run (required)")
	c.Flags().StringVarP(&req.Environment, "env", "e", "", "environment (required)")
	c.Flags().StringVar(&req.Account, "account", "", "service account the runs are requested as (required)")
	c.Flags().StringVar(&req.Preset, "preset", "generic", "payload: generic, alertmanager or pagerduty")
	c.Flags().StringVar(&req.Auth, "auth", "hmac", "authentication: hmac (Standard Webhooks) or bearer")
	c.Flags().StringArrayVar(&mapping, "map", nil, "parameter PARAM=JSONPATH (repeatable)")
	c.Flags().StringVar(&req.DedupKey, "dedup-key", "", "generic preset: JSONPath of the dedup key (default: the webhook-id header)")
	c.Flags().StringVar(&req.OnResolved, "on-resolved", "ignore", "resolved alerts and incidents: ignore or run")
	c.Flags().IntVar(&req.RatePerMinute, "rate", 10, "at most this many deliveries a minute")
	c.Flags().StringVar(&req.Reason, "reason", "", "why (goes into the audit trail and is shown to approvers)")
	return c
}

// triggerDecideCmd approves or denies a proposed trigger, showing what
// is decided and sending the binding it showed.
func (a *app) triggerDecideCmd(decision string) *cobra.Command {
	var comment string
	c := &cobra.Command{
		Use: decision + " NAME",
		Short: map[string]string{"approve": "Approve someone else's proposed trigger, as shown",
			"deny": "Deny a proposed trigger (a comment is required)"}[decision],
		Example: fmt.Sprintf("  airlock triggers %s api-down-staging -m 'restarts in staging are fine'", decision),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if decision == "deny" && strings.TrimSpace(comment) == "" {
				return usageError{errors.New("deny: say why with -m")}
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			var t api.TriggerJSON
			if err := cl.Do(cmd.Context(), "GET", triggerPath(args[0]), nil, &t); err != nil {
				return err
			}
			printTrigger(a.stderr, &t)
			var out api.TriggerJSON
			if err := cl.Do(cmd.Context(), "POST", triggerPath(t.Name)+"/"+decision,
				api.DecisionRequest{Binding: t.Binding, Comment: comment}, &out); err != nil {
				return err
			}
			return a.print(out, func(w io.Writer) { fmt.Fprintf(w, "%s is %s.\n", out.Name, out.Status) })
		},
	}
	c.Flags().StringVarP(&comment, "comment", "m", "", "comment (required to deny)")
	return c
}

func (a *app) triggerChangeCmd(verb string) *cobra.Command {
	short := map[string]string{
		"pause":  "Pause an active trigger: deliveries are refused until it is resumed",
		"resume": "Resume a paused trigger, or propose a suspended one again for approval",
		"delete": "Delete a trigger (its history stays; its name is free again)",
	}[verb]
	var comment string
	c := &cobra.Command{
		Use:     verb + " NAME",
		Short:   short,
		Example: fmt.Sprintf("  airlock triggers %s api-down-staging -m 'maintenance window'", verb),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			method, path := "POST", triggerPath(args[0])+"/"+verb
			if verb == "delete" {
				method, path = "DELETE", triggerPath(args[0])
			}
			var out api.TriggerJSON
			if err := a.call(cmd.Context(), method, path, api.StandingChangeRequest{Comment: comment}, &out); err != nil {
				return err
			}
			if verb == "delete" {
				return a.print(map[string]string{"name": args[0], "status": "deleted"}, func(w io.Writer) { fmt.Fprintf(w, "%s is deleted.\n", args[0]) })
			}
			return a.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "%s is %s.\n", out.Name, out.Status)
				if out.StatusReason != "" {
					fmt.Fprintf(w, "  %s\n", out.StatusReason)
				}
			})
		},
	}
	c.Flags().StringVarP(&comment, "comment", "m", "", "comment (goes into the audit trail)")
	return c
}

func printTrigger(w io.Writer, t *api.TriggerJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Trigger:\t%s (%s)\n", t.Name, t.ID)
	fmt.Fprintf(tw, "Status:\t%s\n", t.Status)
	if t.StatusReason != "" {
		fmt.Fprintf(tw, "Why:\t%s\n", t.StatusReason)
	}
	fmt.Fprintf(tw, "Procedure:\t%s in %s (version digest %s)\n", t.Procedure, t.Environment, t.Digest)
	fmt.Fprintf(tw, "Runs as:\t%s (service account)\n", t.Account)
	fmt.Fprintf(tw, "Webhook:\tPOST %s (%s, %s preset)\n", t.HookPath, t.Auth, t.Preset)
	keys := make([]string, 0, len(t.Mapping))
	for k := range t.Mapping {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		label := ""
		if i == 0 {
			label = "Mapping:"
		}
		fmt.Fprintf(tw, "%s\t%s ← %s\n", label, k, t.Mapping[k])
	}
	if t.DedupKey != "" {
		fmt.Fprintf(tw, "Dedup key:\t%s\n", t.DedupKey)
	}
	fmt.Fprintf(tw, "Resolved:\t%s\n", t.OnResolved)
	fmt.Fprintf(tw, "Rate:\tat most %d a minute\n", t.RatePerMinute)
	fmt.Fprintf(tw, "Proposer:\t%s\n", t.Proposer)
	fmt.Fprintf(tw, "Approvals:\t%d required\n", t.ApprovalsRequired)
	for _, ap := range t.Approvals {
		counts := ""
		if ap.Counts {
			counts = " (counts)"
		}
		fmt.Fprintf(tw, "\t%s %s%s %s\n", ap.Approver, ap.Decision, counts, ap.Comment)
	}
	fmt.Fprintf(tw, "Binding:\t%s\n", t.Binding)
	tw.Flush()
}

func printTriggerEvents(w io.Writer, t *api.TriggerJSON) {
	if len(t.Events) == 0 {
		fmt.Fprintln(w, "\nNo deliveries yet.")
		return
	}
	fmt.Fprintln(w, "\nLatest deliveries:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tKEY\tOUTCOME\tRUN\tDETAIL")
	for _, e := range t.Events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ago(e.At), e.Key, e.Outcome, e.RunID, e.Detail)
	}
	tw.Flush()
}
