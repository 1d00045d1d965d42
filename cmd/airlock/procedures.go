package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/strictyaml"
)

// ValidateReport is `airlock procedures validate -o json`.
type ValidateReport struct {
	Valid      bool                 `json:"valid"`
	Procedures []ValidatedProcedure `json:"procedures"`
	Errors     []ValidateError      `json:"errors"`
}

// ValidatedProcedure is one valid definition.
type ValidatedProcedure struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Name   string `json:"name"`
	Owner  string `json:"owner"`
	Risk   string `json:"risk"`
	Digest string `json:"digest"`
}

// ValidateError is one problem.
type ValidateError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// errSilent makes the command exit 1 without printing more: the output
// has already said what failed.
var errSilent = errors.New("")

func validateReport(paths []string) (*ValidateReport, []*procedure.Source) {
	srcs, err := procedure.LoadPaths(paths)
	rep := &ValidateReport{Procedures: []ValidatedProcedure{}, Errors: []ValidateError{}}
	for _, s := range srcs {
		p := s.Procedure
		rep.Procedures = append(rep.Procedures, ValidatedProcedure{File: s.File, Line: s.Line, Name: p.Name, Owner: p.Owner, Risk: p.Risk, Digest: p.Digest()})
	}
	var es strictyaml.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			rep.Errors = append(rep.Errors, ValidateError{File: e.File, Line: e.Line, Column: e.Column, Path: e.Path, Message: e.Msg})
		}
	} else if err != nil {
		rep.Errors = append(rep.Errors, ValidateError{Message: err.Error()})
	}
	rep.Valid = len(rep.Errors) == 0
	return rep, srcs
}

func printErrors(w io.Writer, es []ValidateError) {
	for _, e := range es {
		fmt.Fprintln(w, (&strictyaml.Error{File: e.File, Line: e.Line, Column: e.Column, Path: e.Path, Msg: e.Message}).Error())
	}
}

func (a *app) proceduresCmd() *cobra.Command {
	c := &cobra.Command{Use: "procedures", Aliases: []string{"procedure"}, Short: "Validate, list, inspect and retire procedures"}
	validate := &cobra.Command{
		Use:   "validate PATH...",
		Short: "Validate procedure files offline (no server needed)",
		Long: "Validate procedure files and directories (recursively, *.yaml and *.yml) without a server.\n" +
			"Every problem is reported with file, line, column and field path. Exit 0 when all are valid, 1 otherwise.\n" +
			"This is the command a service repository's CI runs.",
		Example: "  airlock procedure validate ./airlock/\n  airlock procedure validate -o json ops/restart-api.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, _ := validateReport(args)
			if err := a.print(rep, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				for _, p := range rep.Procedures {
					fmt.Fprintf(tw, "ok\t%s\t%s\t%s\t%s:%d\n", p.Name, p.Risk, p.Digest, p.File, p.Line)
				}
				tw.Flush()
				printErrors(w, rep.Errors)
				fmt.Fprintf(w, "%d valid, %d errors\n", len(rep.Procedures), len(rep.Errors))
			}); err != nil {
				return err
			}
			if !rep.Valid {
				return errSilent
			}
			return nil
		},
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List procedures",
		Example: "  airlock procedures list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.ListResponse[*api.ProcedureJSON]
			if err := a.call(cmd.Context(), "GET", "/api/v1/procedures", nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tOWNER\tRISK\tSTATE\tACTIVE\tPENDING\tTITLE")
				for _, p := range resp.Items {
					active := "-"
					if p.Active != nil {
						active = fmt.Sprintf("v%d", p.Active.Number)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", p.Name, p.Owner, p.Risk, p.State, active, len(p.Pending), p.Title)
				}
				tw.Flush()
			})
		},
	}
	show := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a procedure and its active definition",
		Example: "  airlock procedures show restart-api",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p api.ProcedureJSON
			if err := a.call(cmd.Context(), "GET", "/api/v1/procedures/"+url.PathEscape(args[0]), nil, &p); err != nil {
				return err
			}
			return a.print(p, func(w io.Writer) {
				fmt.Fprintf(w, "%s — %s\nowner %s, risk %s, %s\n", p.Name, p.Title, p.Owner, p.Risk, p.State)
				for _, v := range p.Pending {
					fmt.Fprintf(w, "pending: v%d %s by %s (%s)\n", v.Number, v.Digest, v.Author, v.ID)
				}
				if p.Active != nil {
					fmt.Fprintf(w, "\nactive: v%d %s by %s, approved %s\n\n%s", p.Active.Number, p.Active.Digest, p.Active.Author, ago(p.Active.DecidedAt), p.Active.YAML)
				}
			})
		},
	}
	history := &cobra.Command{
		Use:     "history NAME",
		Short:   "Show every version of a procedure with its reviews",
		Example: "  airlock procedures history restart-api",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp api.ListResponse[*api.VersionJSON]
			if err := a.call(cmd.Context(), "GET", "/api/v1/procedures/"+url.PathEscape(args[0])+"/versions", nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tSTATUS\tRISK\tAUTHOR\tPROPOSED\tDIGEST\tREVIEWS")
				for _, v := range resp.Items {
					var rs []string
					for _, r := range v.Reviews {
						rs = append(rs, r.Reviewer+":"+r.Decision)
					}
					fmt.Fprintf(tw, "v%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Number, v.Status, v.Risk, v.Author, ago(v.CreatedAt), v.Digest[:min(len(v.Digest), 19)], strings.Join(rs, ", "))
				}
				tw.Flush()
			})
		},
	}
	var from, to string
	diff := &cobra.Command{
		Use:     "diff NAME",
		Short:   "Show what changed between two versions (default: active → newest)",
		Example: "  airlock procedures diff restart-api\n  airlock procedures diff restart-api --from 1 --to 3",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if from != "" {
				q.Set("from", from)
			}
			if to != "" {
				q.Set("to", to)
			}
			var resp api.DiffResponse
			if err := a.call(cmd.Context(), "GET", "/api/v1/procedures/"+url.PathEscape(args[0])+"/diff?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				if resp.Diff == "" {
					fmt.Fprintf(w, "v%d and v%d are identical\n", resp.From.Number, resp.To.Number)
					return
				}
				fmt.Fprint(w, resp.Diff)
			})
		},
	}
	diff.Flags().StringVar(&from, "from", "", "version number to diff from")
	diff.Flags().StringVar(&to, "to", "", "version number to diff to")
	var reason string
	retire := &cobra.Command{
		Use:     "retire NAME --reason TEXT",
		Short:   "Retire a procedure: no new runs start",
		Example: "  airlock procedures retire restart-api --reason 'replaced by restart-service'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p api.ProcedureJSON
			if err := a.call(cmd.Context(), "POST", "/api/v1/procedures/"+url.PathEscape(args[0])+"/retire", api.RetireRequest{Reason: reason}, &p); err != nil {
				return err
			}
			return a.print(p, func(w io.Writer) { fmt.Fprintf(w, "Retired %s.\n", p.Name) })
		},
	}
	retire.Flags().StringVar(&reason, "reason", "", "why (required; goes into the audit trail)")
	withdraw := &cobra.Command{
		Use:     "withdraw VERSION",
		Short:   "Withdraw a proposed version (its ID or NAME@N)",
		Example: "  airlock procedures withdraw restart-api@3",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v api.VersionJSON
			if err := a.call(cmd.Context(), "POST", "/api/v1/versions/"+url.PathEscape(args[0])+"/withdraw", nil, &v); err != nil {
				return err
			}
			return a.print(v, func(w io.Writer) { fmt.Fprintf(w, "Withdrew %s v%d.\n", v.Procedure, v.Number) })
		},
	}
	c.AddCommand(validate, list, show, history, diff, retire, withdraw)
	return c
}

// ProposeReport is `airlock propose -o json`.
type ProposeReport struct {
	Results []api.ProposeResponse `json:"results"`
}

func (a *app) proposeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "propose PATH...",
		Short: "Sync procedure files to the server as proposals",
		Long: "Validate the files (as 'procedure validate' does; nothing is proposed unless all are valid), then propose\n" +
			"each procedure whose definition differs from its active or pending version. Unchanged definitions are\n" +
			"no-ops, so running it twice proposes nothing the second time.",
		Example: "  airlock propose ./airlock/",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, srcs := validateReport(args)
			if !rep.Valid {
				printErrors(a.stderr, rep.Errors)
				return fmt.Errorf("%d errors; nothing was proposed", len(rep.Errors))
			}
			var out ProposeReport
			for _, s := range srcs {
				var res api.ProposeResponse
				req := api.ProposeRequest{Source: s.Procedure.YAML(), File: s.File}
				if err := a.call(cmd.Context(), "POST", "/api/v1/versions", req, &res); err != nil {
					if a.output == "table" || a.output == "" {
						a.printProposals(out)
					}
					return fmt.Errorf("%s (%s): %w", s.Procedure.Name, s.File, err)
				}
				out.Results = append(out.Results, res)
			}
			return a.print(out, func(w io.Writer) { a.printProposals(out) })
		},
	}
}

func (a *app) printProposals(out ProposeReport) {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	proposed := 0
	for _, r := range out.Results {
		v := r.Version
		if r.Status == "proposed" {
			proposed++
			fmt.Fprintf(tw, "proposed\t%s v%d\t%s\t%s risk\t%s\n", v.Procedure, v.Number, v.Digest, v.Risk, v.ID)
		} else {
			fmt.Fprintf(tw, "unchanged\t%s v%d\t%s\t%s\t\n", v.Procedure, v.Number, v.Digest, v.Status)
		}
		for _, wd := range r.Withdrawn {
			fmt.Fprintf(tw, "  withdrew\t%s v%d\t%s\t\t\n", wd.Procedure, wd.Number, wd.Digest)
		}
	}
	tw.Flush()
	fmt.Fprintf(a.stdout, "%d proposed, %d unchanged\n", proposed, len(out.Results)-proposed)
}

func (a *app) reviewCmd() *cobra.Command {
	c := &cobra.Command{Use: "review", Short: "Review proposed procedure versions"}
	var all bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the versions waiting for your review (--all: every proposed version)",
		Example: "  airlock review list\n  airlock review list --all -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/versions?reviewable=true"
			if all {
				path = "/api/v1/versions?status=proposed"
			}
			var resp api.ListResponse[*api.VersionJSON]
			if err := a.call(cmd.Context(), "GET", path, nil, &resp); err != nil {
				return err
			}
			return a.print(resp, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tPROCEDURE\tRISK\tAUTHOR\tPROPOSED\tNEEDS\tID")
				for _, v := range resp.Items {
					fmt.Fprintf(tw, "v%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Number, v.Procedure, v.Risk, v.Author, ago(v.CreatedAt), strings.Join(v.Missing, ", "), v.ID)
				}
				tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&all, "all", false, "every proposed version, not only those you can review")
	show := &cobra.Command{
		Use:     "show VERSION",
		Short:   "Show a version, its reviews and its diff against the active version",
		Example: "  airlock review show restart-api@2",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			var v api.VersionJSON
			if err := cl.Do(cmd.Context(), "GET", "/api/v1/versions/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			var d api.DiffResponse
			diffErr := cl.Do(cmd.Context(), "GET", fmt.Sprintf("/api/v1/procedures/%s/diff?to=%d", url.PathEscape(v.Procedure), v.Number), nil, &d)
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "%s v%d (%s), %s risk, by %s\ndigest %s\n", v.Procedure, v.Number, v.Status, v.Risk, v.Author, v.Digest)
				if v.RiskChange != "" {
					fmt.Fprintf(w, "RISK CHANGE: %s\n", v.RiskChange)
				}
				fmt.Fprintf(w, "quorum: %s; missing: %s\n", strings.Join(v.Quorum, ", "), strings.Join(v.Missing, ", "))
				for _, r := range v.Reviews {
					fmt.Fprintf(w, "  %s %s: %s\n", r.Reviewer, r.Decision, r.Comment)
				}
				if diffErr == nil && d.From != nil && d.From.Number != v.Number {
					fmt.Fprintf(w, "\n%s", d.Diff)
				} else {
					fmt.Fprintf(w, "\n%s", v.YAML)
				}
			})
		},
	}
	decide := func(decision string) *cobra.Command {
		var comment, digest string
		c := &cobra.Command{
			Use:     decision + " VERSION",
			Short:   strings.ToUpper(decision[:1]) + decision[1:] + " a proposed version (its ID or NAME@N)",
			Example: fmt.Sprintf("  airlock review %s restart-api@2 --comment 'checked the drain step'", decision),
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				cl, err := a.client()
				if err != nil {
					return err
				}
				if digest == "" {
					// Bind to the digest of the version as fetched now;
					// --digest pins the one the reviewer actually read.
					var v api.VersionJSON
					if err := cl.Do(cmd.Context(), "GET", "/api/v1/versions/"+url.PathEscape(args[0]), nil, &v); err != nil {
						return err
					}
					digest = v.Digest
				}
				var resp api.ReviewResponse
				if err := cl.Do(cmd.Context(), "POST", "/api/v1/versions/"+url.PathEscape(args[0])+"/reviews",
					api.ReviewRequest{Decision: decision, Digest: digest, Comment: comment}, &resp); err != nil {
					return err
				}
				return a.print(resp, func(w io.Writer) {
					v := resp.Version
					switch {
					case resp.Activated:
						fmt.Fprintf(w, "Approved %s v%d: quorum met, it is now the active version.\n", v.Procedure, v.Number)
					case decision == "reject":
						fmt.Fprintf(w, "Rejected %s v%d.\n", v.Procedure, v.Number)
					default:
						fmt.Fprintf(w, "Approved %s v%d; still needs: %s.\n", v.Procedure, v.Number, strings.Join(resp.Missing, ", "))
					}
				})
			},
		}
		c.Flags().StringVarP(&comment, "comment", "m", "", "comment (required to reject)")
		c.Flags().StringVar(&digest, "digest", "", "the digest you reviewed (sha256:…); refused if the version's differs")
		return c
	}
	c.AddCommand(list, show, decide("approve"), decide("reject"))
	return c
}

func decodeYAML(file string, b []byte, v any) error {
	if err := strictyaml.Decode(file, b, v); err != nil {
		return err
	}
	return nil
}
