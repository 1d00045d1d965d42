package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/internal/api"
)

func (a *app) schedulesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "schedules",
		Short: "Schedules: standing requests that start runs at cron ticks once someone else approves them",
		Long: "A schedule names a procedure, an environment, parameters and a cron expression in a time zone.\n" +
			"It is proposed by someone who may request such a run and approved once by someone else, bound to the\n" +
			"procedure's version digest, the parameters and the target nodes; while it is active each tick starts a run.\n" +
			"A new version, changed targets or a policy that no longer permits it suspends it until it is approved again.",
	}
	c.AddCommand(a.schedulesListCmd(), a.scheduleShowCmd(), a.scheduleProposeCmd(),
		a.scheduleDecideCmd("approve"), a.scheduleDecideCmd("deny"),
		a.scheduleChangeCmd("pause"), a.scheduleChangeCmd("resume"), a.scheduleChangeCmd("delete"))
	return c
}

func schedulePath(name string) string { return "/api/v1/schedules/" + url.PathEscape(name) }

func (a *app) schedulesListCmd() *cobra.Command {
	var status string
	c := &cobra.Command{
		Use:     "list",
		Short:   "List the schedules of procedures you may see, with each one's next tick",
		Example: "  airlock schedules list\n  airlock schedules list --status suspended",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if status != "" {
				q.Set("status", status)
			}
			var resp api.ListResponse[*api.ScheduleJSON]
			if err := a.call(cmd.Context(), "GET", "/api/v1/schedules?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tPROCEDURE\tENV\tCRON\tTIME ZONE\tSTATUS\tNEXT TICK\tPROPOSER")
				for _, s := range resp.Items {
					next := "-"
					if len(s.NextTicks) > 0 {
						next = tickTime(s.NextTicks[0], s.TimeZone)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Procedure, s.Environment, s.Cron, s.TimeZone, s.Status, next, s.Proposer)
				}
				tw.Flush()
			})
		},
	}
	c.Flags().StringVar(&status, "status", "", "only schedules with this status: pending_approval, active, paused, suspended, denied or deleted")
	return c
}

func (a *app) scheduleShowCmd() *cobra.Command {
	var history int
	c := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a schedule: what is approved, its next ticks, approvals and the history of its ticks and runs",
		Example: "  airlock schedules show nightly-rotate\n  airlock schedules show nightly-rotate --history 200 -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if history < 1 || history > 1000 {
				return usageError{fmt.Errorf("--history: expected a number from 1 to 1000, got %d", history)}
			}
			var s api.ScheduleJSON
			if err := a.call(cmd.Context(), "GET", schedulePath(args[0])+"?history="+fmt.Sprint(history), nil, &s); err != nil {
				return err
			}
			return a.print(s, func(w io.Writer) {
				printSchedule(w, &s)
				printTicks(w, &s)
			})
		},
	}
	c.Flags().IntVar(&history, "history", 50, "show this many of the latest ticks (up to 1000)")
	return c
}

func (a *app) scheduleProposeCmd() *cobra.Command {
	var req api.ScheduleRequest
	var params []string
	c := &cobra.Command{
		Use:   "propose --name NAME --procedure P --env ENV --cron EXPR [--tz ZONE] [--param NAME=VALUE]...",
		Short: "Propose a schedule; it starts runs once someone else approves it",
		Long: "Propose a schedule. You must be someone policy lets run or request the procedure in the environment.\n" +
			"The cron expression has five fields (minute hour day-of-month month day-of-week) or is a macro:\n" +
			"@yearly, @monthly, @weekly, @daily, @hourly. It is read in --tz (an IANA zone; default UTC).\n" +
			"--missed says what happens to ticks missed while Airlock was down: skip (default) or run-once.\n" +
			"A tick while the previous run still runs is skipped and recorded unless --allow-overlap.\n" +
			"Parameters are checked as for a run; secret parameters cannot be scheduled.\n" +
			"It prints the binding an approver approves and the next five ticks in the schedule's time zone.",
		Example: "  airlock schedules propose --name nightly-rotate --procedure rotate-logs --env staging \\\n" +
			"      --param keep_days=3 --cron '30 2 * * *' --tz Europe/Berlin --reason 'disk fills up at night'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range []struct{ flag, v string }{{"--name", req.Name}, {"--procedure", req.Procedure}, {"--env", req.Environment}, {"--cron", req.Cron}} {
				if f.v == "" {
					return usageError{fmt.Errorf("%s is required", f.flag)}
				}
			}
			p, err := parseParams(params)
			if err != nil {
				return err
			}
			req.Params = p
			var s api.ScheduleJSON
			if err := a.call(cmd.Context(), "POST", "/api/v1/schedules", req, &s); err != nil {
				return err
			}
			return a.print(s, func(w io.Writer) {
				printSchedule(w, &s)
				fmt.Fprintf(w, "\n%s waits for %d approval(s) from someone else. Approvers run:\n  airlock schedules approve %s\n", s.Name, s.ApprovalsRequired, s.Name)
			})
		},
	}
	c.Flags().StringVar(&req.Name, "name", "", "the schedule's name: lower-case letters, digits and '-' (required)")
	c.Flags().StringVar(&req.Procedure, "procedure", "", "procedure to run (required)")
	c.Flags().StringVarP(&req.Environment, "env", "e", "", "environment (required)")
	c.Flags().StringArrayVarP(&params, "param", "p", nil, "parameter NAME=VALUE (repeatable; multi-enum values comma-separated)")
	c.Flags().StringVar(&req.Cron, "cron", "", "cron expression (five fields) or macro such as @daily (required)")
	c.Flags().StringVar(&req.TimeZone, "tz", "UTC", "IANA time zone the cron expression is read in, e.g. Europe/Berlin")
	c.Flags().StringVar(&req.Missed, "missed", "skip", "ticks missed while Airlock was down: skip or run-once")
	c.Flags().BoolVar(&req.AllowOverlap, "allow-overlap", false, "start a tick's run even while the previous one still runs")
	c.Flags().StringVar(&req.Reason, "reason", "", "why (goes into the audit trail and is shown to approvers)")
	return c
}

// scheduleDecideCmd approves or denies a proposed schedule. Like
// `airlock approve`, it shows what is being decided and sends the
// binding it showed: if the schedule changed in between, the server
// refuses the decision.
func (a *app) scheduleDecideCmd(decision string) *cobra.Command {
	var comment string
	c := &cobra.Command{
		Use: decision + " NAME",
		Short: map[string]string{"approve": "Approve someone else's proposed schedule, as shown",
			"deny": "Deny a proposed schedule (a comment is required)"}[decision],
		Example: fmt.Sprintf("  airlock schedules %s nightly-rotate -m 'nightly is fine'", decision),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if decision == "deny" && strings.TrimSpace(comment) == "" {
				return usageError{errors.New("deny: say why with -m")}
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			var s api.ScheduleJSON
			if err := cl.Do(cmd.Context(), "GET", schedulePath(args[0])+"?history=1", nil, &s); err != nil {
				return err
			}
			// Show exactly what is being approved; the decision binds to it.
			printSchedule(a.stderr, &s)
			var out api.ScheduleJSON
			if err := cl.Do(cmd.Context(), "POST", schedulePath(s.Name)+"/"+decision,
				api.DecisionRequest{Binding: s.Binding, Comment: comment}, &out); err != nil {
				return err
			}
			return a.print(out, func(w io.Writer) { printStatus(w, &out) })
		},
	}
	c.Flags().StringVarP(&comment, "comment", "m", "", "comment (required to deny)")
	return c
}

func (a *app) scheduleChangeCmd(verb string) *cobra.Command {
	short := map[string]string{
		"pause":  "Pause an active schedule: no ticks start runs until it is resumed",
		"resume": "Resume a paused schedule, or propose a suspended one again for approval",
		"delete": "Delete a schedule (its history stays; its name is free again)",
	}[verb]
	var comment string
	c := &cobra.Command{
		Use:     verb + " NAME",
		Short:   short,
		Example: fmt.Sprintf("  airlock schedules %s nightly-rotate -m 'freeze week'", verb),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			method, path := "POST", schedulePath(args[0])+"/"+verb
			if verb == "delete" {
				method, path = "DELETE", schedulePath(args[0])
			}
			var out api.ScheduleJSON
			if err := a.call(cmd.Context(), method, path, api.StandingChangeRequest{Comment: comment}, &out); err != nil {
				return err
			}
			return a.print(out, func(w io.Writer) {
				printStatus(w, &out)
				if out.Status == "pending_approval" {
					fmt.Fprintf(w, "It waits for %d approval(s) of what is in service now. Approvers run:\n  airlock schedules approve %s\n", out.ApprovalsRequired, out.Name)
				}
			})
		},
	}
	c.Flags().StringVarP(&comment, "comment", "m", "", "comment (goes into the audit trail)")
	return c
}

func printStatus(w io.Writer, s *api.ScheduleJSON) {
	fmt.Fprintf(w, "%s: %s", s.Name, s.Status)
	if s.StatusReason != "" {
		fmt.Fprintf(w, " (%s)", s.StatusReason)
	}
	fmt.Fprintln(w)
}

// tickTime is a tick in the schedule's own time zone, as its cron
// expression reads it.
func tickTime(t time.Time, zone string) string {
	if loc, err := time.LoadLocation(zone); err == nil {
		t = t.In(loc)
	}
	return t.Format("Mon 2006-01-02 15:04 MST")
}

// printSchedule writes what a schedule is and what its approvals bind:
// procedure, environment, parameters, targets, version digest, binding,
// cron and time zone, and its next ticks.
func printSchedule(w io.Writer, s *api.ScheduleJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "schedule\t%s (%s)\n", s.Name, s.ID)
	fmt.Fprintf(tw, "procedure\t%s in %s\n", s.Procedure, s.Environment)
	fmt.Fprintf(tw, "status\t%s\n", s.Status)
	if s.StatusReason != "" {
		fmt.Fprintf(tw, "why\t%s\n", s.StatusReason)
	}
	fmt.Fprintf(tw, "cron\t%s (%s)\n", s.Cron, s.TimeZone)
	overlap := "a tick while the previous run still runs is skipped"
	if s.AllowOverlap {
		overlap = "allowed"
	}
	fmt.Fprintf(tw, "missed ticks\t%s\n", s.Missed)
	fmt.Fprintf(tw, "overlap\t%s\n", overlap)
	params := "{}"
	var compact bytes.Buffer
	if json.Compact(&compact, s.Params) == nil && compact.String() != "null" {
		params = compact.String()
	}
	fmt.Fprintf(tw, "parameters\t%s\n", params)
	fmt.Fprintf(tw, "targets\t%s\n", strings.Join(s.Targets, ", "))
	fmt.Fprintf(tw, "version\t%s\n", s.Digest)
	fmt.Fprintf(tw, "binding\t%s\n", s.Binding)
	fmt.Fprintf(tw, "proposed\tby %s, %s\n", s.Proposer, ago(s.ProposedAt))
	if s.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", s.Reason)
	}
	fmt.Fprintf(tw, "approvals\t%d required from someone other than %s\n", s.ApprovalsRequired, s.Proposer)
	for _, ap := range s.Approvals {
		counts := ""
		if ap.Counts {
			counts = " (in force)"
		}
		fmt.Fprintf(tw, "\t%s %s%s: %s\n", ap.Approver, ap.Decision, counts, ap.Comment)
	}
	for i, t := range s.NextTicks {
		label := ""
		if i == 0 {
			label = "next ticks"
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, tickTime(t, s.TimeZone))
	}
	tw.Flush()
}

// printTicks writes the history of a schedule's ticks, newest first.
func printTicks(w io.Writer, s *api.ScheduleJSON) {
	if len(s.History) == 0 {
		fmt.Fprintln(w, "\nNo ticks yet.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTICK\tOUTCOME\tRUN\tDETAIL")
	for _, e := range s.History {
		run := e.RunID
		if run == "" {
			run = "-"
		}
		tick := e.Key // the tick's time (RFC 3339), which names it
		if t, err := time.Parse(time.RFC3339, e.Key); err == nil {
			tick = tickTime(t, s.TimeZone)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", tick, e.Outcome, run, e.Detail)
	}
	tw.Flush()
}
