package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/authz"
)

func (a *app) policyCmd() *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Read, change (under dual control), explain and review access policy"}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List policy versions",
		Example: "  airlock policy list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.ListResponse[*api.PolicyJSON]
			if err := a.call(cmd.Context(), "GET", "/api/v1/policies", nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tSTATUS\tAUTHOR\tDECIDED BY\tCREATED\tDESCRIPTION\tID")
				for _, v := range resp.Items {
					fmt.Fprintf(tw, "v%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Number, v.Status, v.Author, v.DecidedBy, ago(v.CreatedAt), v.Description, v.ID)
				}
				tw.Flush()
			})
		},
	}
	show := &cobra.Command{
		Use:     "show [ID|active]",
		Short:   "Show a policy version's text (default: the one in force)",
		Example: "  airlock policy show\n  airlock policy show pol_06h… -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := "active"
			if len(args) == 1 {
				id = args[0]
			}
			var v api.PolicyJSON
			if err := a.call(cmd.Context(), "GET", "/api/v1/policies/"+url.PathEscape(id), nil, &v); err != nil {
				return err
			}
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "// policy v%d (%s) %s\n// by %s: %s\n%s", v.Number, v.Status, v.Digest, v.Author, v.Description, v.Text)
			})
		},
	}
	var against string
	diff := &cobra.Command{
		Use:     "diff ID",
		Short:   "Show what a policy version changes (against the one in force by default)",
		Example: "  airlock policy diff pol_06h…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d api.PolicyDiffResponse
			if err := a.call(cmd.Context(), "GET", "/api/v1/policies/"+url.PathEscape(args[0])+"/diff?against="+url.QueryEscape(against), nil, &d); err != nil {
				return err
			}
			return a.print(d, func(w io.Writer) { fmt.Fprint(w, d.Diff) })
		},
	}
	diff.Flags().StringVar(&against, "against", "active", "version to diff against")
	var description string
	propose := &cobra.Command{
		Use:   "propose FILE --description TEXT",
		Short: "Propose a complete policy set; it takes effect when a second admin approves",
		Long: "Propose the Cedar policies in FILE as the next policy version. They are validated against the schema\n" +
			"first (every error with line and column). Check the effect with 'airlock policy what-if' and\n" +
			"'airlock policy access-review --policy ID' before asking another admin to approve.",
		Example: "  airlock policy propose policy.cedar --description 'qa may reset fixtures in staging'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var v api.PolicyJSON
			if err := a.call(cmd.Context(), "POST", "/api/v1/policies", api.ProposePolicyRequest{Text: string(text), Description: description}, &v); err != nil {
				return err
			}
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "Proposed policy v%d (%s). It takes effect when another admin runs:\n  airlock policy approve %s\n", v.Number, v.ID, v.ID)
			})
		},
	}
	propose.Flags().StringVarP(&description, "description", "m", "", "what the change is for (required)")
	decide := func(decision string) *cobra.Command {
		var comment, digest string
		c := &cobra.Command{
			Use:     decision + " ID",
			Short:   strings.ToUpper(decision[:1]) + decision[1:] + " a proposed policy version (not your own)",
			Example: fmt.Sprintf("  airlock policy %s pol_06h… -m 'checked with what-if'", decision),
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var v api.PolicyJSON
				if err := a.call(cmd.Context(), "POST", "/api/v1/policies/"+url.PathEscape(args[0])+"/"+decision,
					api.PolicyDecisionRequest{Digest: digest, Comment: comment}, &v); err != nil {
					return err
				}
				return a.print(v, func(w io.Writer) { fmt.Fprintf(w, "Policy v%d is now %s.\n", v.Number, v.Status) })
			},
		}
		c.Flags().StringVarP(&comment, "comment", "m", "", "comment (required to reject)")
		c.Flags().StringVar(&digest, "digest", "", "the digest of the text you read; refused if it differs")
		return c
	}
	withdraw := &cobra.Command{
		Use:     "withdraw ID",
		Short:   "Withdraw your own proposed policy version",
		Example: "  airlock policy withdraw pol_06h…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v api.PolicyJSON
			if err := a.call(cmd.Context(), "POST", "/api/v1/policies/"+url.PathEscape(args[0])+"/withdraw", nil, &v); err != nil {
				return err
			}
			return a.print(v, func(w io.Writer) { fmt.Fprintf(w, "Withdrew policy v%d.\n", v.Number) })
		},
	}
	c.AddCommand(list, show, diff, propose, decide("approve"), decide("reject"), withdraw,
		a.explainCmd("explain"), a.explainCmd("what-if"), a.accessReviewCmd(), a.schemaCmd())
	return c
}

func (a *app) explainCmd(name string) *cobra.Command {
	var q authz.Question
	var params []string
	var policyFile string
	c := &cobra.Command{
		Use:   name + " --user U --action A [--procedure P] [--env E] [-p k=v]...",
		Short: "Explain a decision and the policies that made it",
		Example: "  airlock policy explain --user alice --action run --procedure flush-cache --env production\n" +
			"  airlock policy explain --user bob --action approveRun --procedure restart-service --env production --requester erin",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q.Params = map[string]string{}
			for _, kv := range params {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return usageError{fmt.Errorf("-p: expected NAME=VALUE, got %q", kv)}
				}
				q.Params[k] = v
			}
			if policyFile != "" {
				b, err := os.ReadFile(policyFile)
				if err != nil {
					return err
				}
				q.PolicyText = string(b)
			}
			if name == "what-if" && q.PolicyText == "" && q.PolicyVersion == "" {
				return usageError{fmt.Errorf("what-if needs --policy ID or --file FILE: the policy to ask instead of the one in force")}
			}
			var ans authz.Answer
			if err := a.call(cmd.Context(), "POST", "/api/v1/policy/explain", q, &ans); err != nil {
				return err
			}
			return a.print(ans, func(w io.Writer) {
				if line := outcomeLine(q.Username, q.Procedure, q.Environment, ans); line != "" {
					fmt.Fprintf(w, "%s\n\n", line)
				}
				verdict := "DENY"
				if ans.Allowed {
					verdict = "ALLOW"
				}
				fmt.Fprintf(w, "%s: %s may %s", verdict, q.Username, q.Action)
				if q.Procedure != "" {
					fmt.Fprintf(w, " %s", q.Procedure)
				}
				if q.Environment != "" {
					fmt.Fprintf(w, " in %s", q.Environment)
				}
				fmt.Fprintf(w, "? %s (policy %s)\n", ans.Reason, ans.Policy)
				for _, p := range ans.Policies {
					fmt.Fprintf(w, "\n%s %s:\n%s\n", p.Effect, p.ID, p.Text)
				}
				for _, e := range ans.Errors {
					fmt.Fprintf(w, "evaluation error (counts as not matching): %s\n", e)
				}
			})
		},
	}
	if name == "what-if" {
		c.Short = "Ask explain's question of a proposed policy before it is approved"
		c.Example = "  airlock policy what-if --policy pol_06h… --user alice --action run --procedure flush-cache --env production\n" +
			"  airlock policy what-if --file new.cedar --user erin --action run --procedure rotate-logs --env production"
		c.Flags().StringVar(&q.PolicyVersion, "policy", "", "proposed policy version ID")
		c.Flags().StringVar(&policyFile, "file", "", "Cedar policy file to ask instead")
	}
	c.Flags().StringVar(&q.Username, "user", "", "the user asked about")
	c.Flags().StringVar(&q.Action, "action", "", "run, request, view, approveRun, cancelRun, viewRun, propose, review, retire, readAudit, …")
	c.Flags().StringVar(&q.Procedure, "procedure", "", "procedure name")
	c.Flags().StringVar(&q.Environment, "env", "", "environment")
	c.Flags().StringVar(&q.Requester, "requester", "", "for approveRun/cancelRun/viewRun: who requested the run (default --user)")
	c.Flags().StringArrayVarP(&params, "param", "p", nil, "parameter NAME=VALUE (repeatable)")
	_ = c.MarkFlagRequired("user")
	_ = c.MarkFlagRequired("action")
	return c
}

func (a *app) accessReviewCmd() *cobra.Command {
	var policyVersion, format string
	c := &cobra.Command{
		Use:   "access-review",
		Short: "Every user × procedure × environment → run / request / none, with the deciding policies",
		Long: "The quarterly access-review evidence: for every user, active procedure and environment, whether policy\n" +
			"lets them run it, only request it, or neither, whether such a run waits for an approval, and the policies\n" +
			"that decided. --policy evaluates a proposed policy instead of the one in force.",
		Example: "  airlock policy access-review\n  airlock policy access-review --format csv > access-review-2026Q4.csv",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var rep authz.AccessReport
			if err := a.call(cmd.Context(), "GET", "/api/v1/policy/access-review?policy_version="+url.QueryEscape(policyVersion), nil, &rep); err != nil {
				return err
			}
			if format == "csv" {
				return api.WriteAccessCSV(a.stdout, &rep)
			}
			if format != "" && format != "table" {
				a.output = format
			}
			return a.print(rep, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "USER\tPROCEDURE\tENVIRONMENT\tACCESS\tAPPROVAL\tPOLICIES\n")
				for _, r := range rep.Rows {
					approval := ""
					if r.NeedsApproval {
						approval = "needed"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.User, r.Procedure, r.Environment, r.Access, approval, strings.Join(r.Policies, ", "))
				}
				tw.Flush()
				fmt.Fprintf(w, "policy %s\n", rep.Policy)
			})
		},
	}
	c.Flags().StringVar(&policyVersion, "policy", "", "evaluate this (proposed) policy version instead of the one in force")
	c.Flags().StringVar(&format, "format", "table", "table, csv, json or yaml")
	return c
}

func (a *app) schemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "schema",
		Short:   "Print the Cedar schema policies are validated against",
		Example: "  airlock policy schema > airlock.cedarschema",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var s api.SchemaResponse
			if err := a.call(cmd.Context(), "GET", "/api/v1/policy/schema", nil, &s); err != nil {
				return err
			}
			return a.print(s, func(w io.Writer) { fmt.Fprint(w, s.Schema) })
		},
	}
}

// outcomeLine is what a person asking about a run wants to know first:
// who can run or request it, and who can approve it.
func outcomeLine(user, proc, env string, ans authz.Answer) string {
	what := proc
	if env != "" {
		what += " in " + env
	}
	switch {
	case ans.Outcome == "":
		return ""
	case ans.Outcome == "runs at once":
		return fmt.Sprintf("%s can run %s; it runs at once.", user, what)
	case ans.Outcome == "refused":
		return fmt.Sprintf("%s can neither run nor request %s.", user, what)
	}
	why := strings.TrimPrefix(ans.Outcome, "waits for approval ")
	line := fmt.Sprintf("%s can request %s; it waits for approval %s.", user, what, why)
	if len(ans.Approvers) == 0 {
		return line + " Nobody could approve it now."
	}
	return line + " " + strings.Join(ans.Approvers, " or ") + " can approve it."
}
