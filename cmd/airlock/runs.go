package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/client"
	"github.com/airlockhq/airlock/internal/inventory"
	"github.com/airlockhq/airlock/internal/store"
)

// exitCode makes the command exit with a given status without a message.
type exitCode int

func (e exitCode) Error() string { return "" }

// runExit maps a run's final status to the exit code of run --follow:
// 0 succeeded, 1 failed, 3 denied or canceled (or expired), 4 timed out.
func runExit(status string) error {
	switch status {
	case store.RunSucceeded:
		return nil
	case store.RunTimedOut:
		return exitCode(4)
	case store.RunDenied, store.RunCanceled, store.RunExpired:
		return exitCode(3)
	}
	return exitCode(1)
}

func parseParams(kvs []string) (map[string]any, error) {
	out := map[string]any{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("-p: expected NAME=VALUE, got %q", kv)}
		}
		out[k] = v
	}
	return out, nil
}

func (a *app) runCmd() *cobra.Command {
	var env, reason, ticket string
	var params []string
	var follow, dry bool
	var wait time.Duration
	c := &cobra.Command{
		Use:   "run PROCEDURE[@VERSION] --env ENV [-p NAME=VALUE]...",
		Short: "Request a run of a procedure",
		Long: "Request a run. Parameters are validated against the procedure's active version before anything is stored.\n" +
			"Policy decides: the run is queued, waits for someone else's approval, or is refused.\n" +
			"--dry-run shows the target nodes and the decision without requesting anything.\n" +
			"With --follow the output streams as it happens and the exit status is the run's:\n" +
			"0 succeeded, 1 failed, 3 denied or canceled, 4 timed out.\n" +
			"PROCEDURE@N runs version N: a proposed version is a try run, unreviewed, allowed only in a try\n" +
			"environment (try_environments) to its author or owner team, never with secrets.",
		Example: "  airlock run flush-cache --env staging -p cache=sessions --follow\n" +
			"  airlock run restart-service --env production -p service=api -p ticket=OPS-1234 --reason 'memory leak'\n" +
			"  airlock run restart-service --env production -p service=api --dry-run\n" +
			"  airlock run rotate-logs@3 --env sandbox --follow        # try a proposed version",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return usageError{errors.New("--env is required")}
			}
			p, err := parseParams(params)
			if err != nil {
				return err
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			name, version, err := splitVersion(args[0])
			if err != nil {
				return err
			}
			req := api.RunRequest{Procedure: name, Environment: env, Params: p, Reason: reason, Ticket: ticket, Version: version}
			if dry {
				var plan api.PlanResponse
				if err := cl.Do(cmd.Context(), "POST", "/api/v1/procedures/"+url.PathEscape(name)+"/plan", req, &plan); err != nil {
					return err
				}
				return a.print(plan, func(w io.Writer) {
					fmt.Fprintf(w, "%s v%d (%s) in %s: %s", plan.Procedure, plan.Version, plan.Digest[:min(19, len(plan.Digest))], plan.Environment, plan.Decision)
					if plan.Try {
						fmt.Fprint(w, " (a try run: unreviewed)")
					}
					if plan.Decision == "request" {
						fmt.Fprintf(w, " (%d approval(s) from someone else)", plan.Approvals)
					}
					fmt.Fprintf(w, "\ntargets (%d):\n", len(plan.Targets))
					for _, n := range plan.Targets {
						fmt.Fprintf(w, "  %s\t%s\t%s\n", n.Name, n.Transport, n.Address)
					}
				})
			}
			key := rand.Text()
			var run api.RunJSON
			prefer := ""
			if follow && wait > 0 {
				// A short run ends within this: one request, no stream.
				prefer = fmt.Sprintf("wait=%d", int(wait.Round(time.Second)/time.Second))
			}
			if err := doIdempotent(cmd.Context(), cl, "/api/v1/runs", key, prefer, req, &run); err != nil {
				return err
			}
			if !follow {
				return a.print(run, func(w io.Writer) {
					switch run.Status {
					case store.RunPending:
						fmt.Fprintf(w, "%s is pending approval (%d needed from someone else). Approvers run:\n  airlock approve %s\n", run.ID, run.ApprovalsRequired, run.ID)
					default:
						fmt.Fprintf(w, "%s %s on %s. Follow it with:\n  airlock runs logs %s -f\n", run.ID, run.Status, strings.Join(run.Targets, ", "), run.ID)
					}
					if run.Try {
						fmt.Fprintln(w, "It is a try run of an unreviewed version: never evidence of an approved change.")
					}
				})
			}
			prefix := len(run.Targets) > 1
			if store.RunFinal(run.Status) && run.Output != nil {
				fmt.Fprintf(a.stderr, "%s ran on %s\n", run.ID, strings.Join(run.Targets, ", "))
				for _, c := range run.Output {
					a.printChunk(c, prefix)
				}
				if !run.OutputMore {
					a.printEnd(&run)
					return runExit(run.Status)
				}
			} else {
				fmt.Fprintf(a.stderr, "%s %s on %s\n", run.ID, run.Status, strings.Join(run.Targets, ", "))
			}
			after := ""
			if run.OutputNext > 0 {
				after = strconv.FormatInt(run.OutputNext, 10)
			}
			final, err := a.follow(cmd.Context(), cl, run.ID, "", after, prefix)
			if err != nil {
				return err
			}
			return runExit(final.Status)
		},
	}
	c.Flags().StringVarP(&env, "env", "e", "", "environment (required)")
	c.Flags().StringArrayVarP(&params, "param", "p", nil, "parameter NAME=VALUE (repeatable; multi-enum values comma-separated)")
	c.Flags().StringVar(&reason, "reason", "", "why (goes into the audit trail)")
	c.Flags().StringVar(&ticket, "ticket", "", "ticket reference")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "stream the output and exit with the run's status")
	c.Flags().DurationVar(&wait, "wait", time.Second, "with --follow: how long the request waits for the run to end (whole seconds, at most 60s) before its output streams; 0 streams at once")
	c.Flags().BoolVar(&dry, "dry-run", false, "show targets and decision; request nothing")
	return c
}

// splitVersion splits NAME@N.
func splitVersion(arg string) (string, int, error) {
	name, num, ok := strings.Cut(arg, "@")
	if !ok {
		return arg, 0, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(num, "v"))
	if err != nil || n < 1 {
		return "", 0, usageError{fmt.Errorf("%q: expected PROCEDURE or PROCEDURE@VERSION (a version number), got %q after @", arg, num)}
	}
	return name, n, nil
}

// doIdempotent POSTs with an Idempotency-Key, retrying once on a
// connection failure: the key guarantees one run.
// prefer, when set, is sent as the Prefer header.
func doIdempotent(ctx context.Context, cl *client.Client, path, key, prefer string, in, out any) error {
	hc := *cl
	hc.Headers = map[string]string{"Idempotency-Key": key}
	if prefer != "" {
		hc.Headers["Prefer"] = prefer
	}
	err := hc.Do(ctx, "POST", path, in, out)
	if airlock.ErrorKind(err) == airlock.Unavailable {
		time.Sleep(time.Second)
		err = hc.Do(ctx, "POST", path, in, out)
	}
	return err
}

// follow streams a run's output after sequence number after ("" for
// all) until it ends and returns it.
func (a *app) follow(ctx context.Context, cl *client.Client, id, node, after string, prefix bool) (*api.RunJSON, error) {
	q := url.Values{}
	if node != "" {
		q.Set("node", node)
	}
	last := after
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, "GET", cl.Server+"/api/v1/runs/"+url.PathEscape(id)+"/output?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+cl.Token)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if attempt < 5 && ctx.Err() == nil {
				time.Sleep(time.Second)
				continue
			}
			return nil, err
		}
		if resp.StatusCode != 200 {
			resp.Body.Close()
			var r api.RunJSON
			return nil, cl.Do(ctx, "GET", "/api/v1/runs/"+url.PathEscape(id), nil, &r)
		}
		final, lastID, err := a.readEvents(resp.Body, prefix)
		resp.Body.Close()
		if lastID != "" {
			last = lastID
		}
		if final != nil || ctx.Err() != nil {
			return final, err
		}
		time.Sleep(500 * time.Millisecond) // stream broke: resume where it stopped
	}
}

func (a *app) readEvents(r io.Reader, prefix bool) (*api.RunJSON, string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var event, id string
	lastStatus := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			data := []byte(strings.TrimPrefix(line, "data: "))
			switch event {
			case "output":
				var c api.ChunkJSON
				if json.Unmarshal(data, &c) == nil {
					a.printChunk(c, prefix)
				}
			case "status":
				var s struct{ Status, Error string }
				if json.Unmarshal(data, &s) == nil && s.Status != lastStatus {
					lastStatus = s.Status
					if s.Status == store.RunPending {
						fmt.Fprintln(a.stderr, "waiting for approval…")
					}
				}
			case "end":
				var r api.RunJSON
				if err := json.Unmarshal(data, &r); err != nil {
					return nil, id, err
				}
				a.printEnd(&r)
				return &r, id, nil
			}
		}
	}
	return nil, id, sc.Err()
}

// printChunk prints a piece of output: stdout to stdout, the rest to
// stderr, each line after its node's name when prefix.
func (a *app) printChunk(c api.ChunkJSON, prefix bool) {
	w := a.stdout
	if c.Stream != store.StreamStdout {
		w = a.stderr
	}
	if !prefix {
		io.WriteString(w, a.visible(c.Data))
		return
	}
	for _, l := range strings.SplitAfter(c.Data, "\n") {
		if l != "" {
			fmt.Fprintf(w, "[%s] %s", c.Node, a.visible(l))
		}
	}
}

// printEnd prints a run's final status.
func (a *app) printEnd(r *api.RunJSON) {
	msg := r.Status
	if r.Error != "" {
		msg += ": " + r.Error
	}
	fmt.Fprintf(a.stderr, "%s %s\n", r.ID, msg)
}

func (a *app) runsCmd() *cobra.Command {
	c := &cobra.Command{Use: "runs", Short: "List, inspect, follow and cancel runs"}
	var status, procedure string
	var mine bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the runs you may see, newest first",
		Example: "  airlock runs list --mine\n  airlock runs list --status pending_approval",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if status != "" {
				q.Set("status", status)
			}
			if procedure != "" {
				q.Set("procedure", procedure)
			}
			if mine {
				q.Set("mine", "true")
			}
			var resp api.ListResponse[*api.RunJSON]
			if err := a.call(cmd.Context(), "GET", "/api/v1/runs?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "RUN\tPROCEDURE\tENV\tSTATUS\tREQUESTER\tCREATED\tTARGETS")
				for _, r := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.ID, r.Procedure, r.Environment, r.Status, r.Requester, ago(r.CreatedAt), len(r.Targets))
				}
				tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&status, "status", "", "only runs with this status")
	list.Flags().StringVar(&procedure, "procedure", "", "only runs of this procedure")
	list.Flags().BoolVar(&mine, "mine", false, "only runs you requested")
	show := &cobra.Command{
		Use:     "show RUN",
		Short:   "Show a run: parameters, approvals, nodes and steps",
		Example: "  airlock runs show run_06h…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r api.RunJSON
			if err := a.call(cmd.Context(), "GET", "/api/v1/runs/"+url.PathEscape(args[0]), nil, &r); err != nil {
				return err
			}
			return a.print(r, func(w io.Writer) { printRun(w, &r) })
		},
	}
	var logFollow bool
	var node string
	logs := &cobra.Command{
		Use:     "logs RUN [-f] [--node NODE]",
		Short:   "Print a run's output; -f follows it live",
		Example: "  airlock runs logs run_06h… -f",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			var r api.RunJSON
			if err := cl.Do(cmd.Context(), "GET", "/api/v1/runs/"+url.PathEscape(args[0]), nil, &r); err != nil {
				return err
			}
			if logFollow {
				final, err := a.follow(cmd.Context(), cl, r.ID, node, "", len(r.Targets) > 1 && node == "")
				if err != nil {
					return err
				}
				return runExit(final.Status)
			}
			after := int64(0)
			for {
				var page api.OutputResponse
				q := url.Values{"after": {fmt.Sprint(after)}}
				if node != "" {
					q.Set("node", node)
				}
				if err := cl.Do(cmd.Context(), "GET", "/api/v1/runs/"+url.PathEscape(r.ID)+"/output?"+q.Encode(), nil, &page); err != nil {
					return err
				}
				for _, c := range page.Chunks {
					w := a.stdout
					if c.Stream != store.StreamStdout {
						w = a.stderr
					}
					if len(r.Targets) > 1 && node == "" {
						fmt.Fprintf(w, "[%s] ", c.Node)
					}
					io.WriteString(w, a.visible(c.Data))
				}
				if page.Next == after {
					return nil
				}
				after = page.Next
			}
		},
	}
	logs.Flags().BoolVarP(&logFollow, "follow", "f", false, "follow live until the run ends")
	logs.Flags().StringVar(&node, "node", "", "only this node's output")
	logs.Flags().BoolVar(&a.rawOutput, "raw", false, "write the output as stored, control characters included (by default they are shown as \\x1b and the like, so that output cannot drive the terminal)")
	cancel := &cobra.Command{
		Use:     "cancel RUN",
		Short:   "Cancel a run (a running one is killed on its nodes)",
		Example: "  airlock runs cancel run_06h…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r api.RunJSON
			if err := a.call(cmd.Context(), "POST", "/api/v1/runs/"+url.PathEscape(args[0])+"/cancel", nil, &r); err != nil {
				return err
			}
			return a.print(r, func(w io.Writer) { fmt.Fprintf(w, "%s: %s\n", r.ID, r.Status) })
		},
	}
	c.AddCommand(list, show, logs, cancel)
	return c
}

func printRun(w io.Writer, r *api.RunJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s\n", r.ID)
	fmt.Fprintf(tw, "procedure\t%s (%s)\n", r.Procedure, r.Digest)
	fmt.Fprintf(tw, "environment\t%s\n", r.Environment)
	fmt.Fprintf(tw, "status\t%s\n", r.Status)
	if r.Error != "" {
		fmt.Fprintf(tw, "reason\t%s\n", r.Error)
	}
	fmt.Fprintf(tw, "requester\t%s\n", r.Requester)
	fmt.Fprintf(tw, "parameters\t%s\n", string(r.Params))
	fmt.Fprintf(tw, "targets\t%s\n", strings.Join(r.Targets, ", "))
	if r.ApprovalsRequired > 0 {
		fmt.Fprintf(tw, "approvals\t%d required; binding %s\n", r.ApprovalsRequired, r.Binding)
		for _, ap := range r.Approvals {
			verb := map[string]string{"approve": "approved", "deny": "denied"}[ap.Decision]
			if ap.Comment == "" {
				fmt.Fprintf(tw, "\t%s %s\n", ap.Approver, verb)
			} else {
				fmt.Fprintf(tw, "\t%s %s: %s\n", ap.Approver, verb, ap.Comment)
			}
		}
	}
	fmt.Fprintf(tw, "created\t%s\n", ago(r.CreatedAt))
	if !r.FinishedAt.IsZero() {
		fmt.Fprintf(tw, "finished\t%s (output %d bytes, %s)\n", ago(r.FinishedAt), r.OutputBytes, r.OutputDigest)
	}
	tw.Flush()
	if len(r.Nodes) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nNODE\tSTATUS\tEXIT\tERROR")
		for _, n := range r.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", n.Node, n.Status, n.ExitCode, n.Error)
		}
		tw.Flush()
	}
}

func (a *app) decideCmd(decision string) *cobra.Command {
	var comment string
	c := &cobra.Command{
		Use:     decision + " RUN",
		Short:   map[string]string{"approve": "Approve someone else's pending run", "deny": "Deny a pending run"}[decision],
		Example: fmt.Sprintf("  airlock %s run_06h… -m 'checked the ticket'", decision),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			var r api.RunJSON
			if err := cl.Do(cmd.Context(), "GET", "/api/v1/runs/"+url.PathEscape(args[0]), nil, &r); err != nil {
				return err
			}
			// Show exactly what is being approved; the approval binds to it.
			printRun(a.stderr, &r)
			var out api.RunJSON
			if err := cl.Do(cmd.Context(), "POST", "/api/v1/runs/"+url.PathEscape(r.ID)+"/"+decision,
				api.DecisionRequest{Binding: r.Binding, Comment: comment}, &out); err != nil {
				return err
			}
			return a.print(out, func(w io.Writer) { fmt.Fprintf(w, "%s: %s\n", out.ID, out.Status) })
		},
	}
	c.Flags().StringVarP(&comment, "comment", "m", "", "comment (required to deny)")
	return c
}

func (a *app) nodesCmd() *cobra.Command {
	c := &cobra.Command{Use: "nodes", Short: "Manage the inventory (manageNodes)"}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List nodes",
		Example: "  airlock nodes list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.ListResponse[inventory.Node]
			if err := a.call(cmd.Context(), "GET", "/api/v1/nodes", nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tENV\tTRANSPORT\tADDRESS\tTAGS\tCREDENTIAL")
				for _, n := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s:%d\t%s\t%s\n", n.Name, n.Environment, n.Transport, n.Address, n.Port, strings.Join(n.Tags, ","), n.Credential)
				}
				tw.Flush()
			})
		},
	}
	put := &cobra.Command{
		Use:     "put FILE",
		Short:   "Create or replace the nodes of an inventory-format YAML file through the API",
		Example: "  airlock nodes put nodes.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var f inventory.File
			if err := decodeYAML(args[0], b, &f); err != nil {
				return err
			}
			for _, n := range f.Nodes {
				if err := a.call(cmd.Context(), "PUT", "/api/v1/nodes/"+url.PathEscape(n.Name), n, nil); err != nil {
					return fmt.Errorf("node %s: %w", n.Name, err)
				}
				fmt.Fprintf(a.stdout, "put %s\n", n.Name)
			}
			return nil
		},
	}
	rm := &cobra.Command{
		Use:     "rm NAME",
		Short:   "Remove a node",
		Example: "  airlock nodes rm web-3",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd.Context(), "DELETE", "/api/v1/nodes/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	c.AddCommand(list, put, rm)
	return c
}

// visible renders the control characters of a run's output as escapes
// (ESC as \x1b, CR as \r), keeping newlines and tabs, so that what a
// step printed cannot move the cursor, retitle the window or rewrite
// what the terminal shows; --raw keeps them.
func (a *app) visible(s string) string {
	if a.rawOutput || !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\r':
			b.WriteString(`\r`)
		case isControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune) bool {
	return (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0)
}
