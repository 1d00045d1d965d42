package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/evidence"
)

func (a *app) evidenceCmd() *cobra.Command {
	c := &cobra.Command{Use: "evidence", Short: "Export evidence bundles and verify them offline"}
	var req api.EvidenceRequest
	var out string
	export := &cobra.Command{
		Use:   "export (--from T1 --to T2 [--procedure P] [--env E] | --run RUN) --out bundle.zip",
		Short: "Export an evidence bundle for a period or one run (exportEvidence)",
		Long: "Export the audit events of a period with inclusion proofs against a freshly signed checkpoint, the runs\n" +
			"with their output, the procedure versions with their reviews, the policies in force, a summary per control\n" +
			"and an HTML report, all under a signed manifest. Times are RFC 3339 or dates (--to DATE includes that day).\n" +
			"--run exports one run's bundle: its events, output, version with reviews and the policies in force.",
		Example: "  airlock evidence export --from 2026-10-01 --to 2026-12-31 --out airlock-2026Q4.zip\n" +
			"  airlock evidence export --from 2026-11-27 --to 2026-11-27 --procedure restart-service --env production --out day.zip\n" +
			"  airlock evidence export --run run_06h1q… --out run.zip",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case out == "":
				return usageError{fmt.Errorf("--out is required")}
			case req.Run != "" && (req.From != "" || req.To != "" || req.Procedure != "" || req.Environment != ""):
				return usageError{fmt.Errorf("--run exports one run: --from, --to, --procedure and --env do not apply")}
			case req.Run == "" && (req.From == "" || req.To == ""):
				return usageError{fmt.Errorf("--from and --to are required (or --run)")}
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			b, _ := json.Marshal(req)
			hr, err := http.NewRequestWithContext(cmd.Context(), "POST", cl.Server+"/api/v1/evidence", bytes.NewReader(b))
			if err != nil {
				return err
			}
			hr.Header.Set("Content-Type", "application/json")
			hr.Header.Set("Authorization", "Bearer "+cl.Token)
			fmt.Fprintln(a.stderr, "exporting…")
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				var e api.ErrorBody
				_ = json.NewDecoder(resp.Body).Decode(&e)
				return fmt.Errorf("%s", e.Error.Message)
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			n, err := io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Wrote %s (%d bytes). Verify it with: airlock evidence verify %s --key KEY\n", out, n, out)
			return nil
		},
	}
	export.Flags().StringVar(&req.From, "from", "", "start of the period (RFC 3339 or YYYY-MM-DD)")
	export.Flags().StringVar(&req.To, "to", "", "end of the period (a date includes that day)")
	export.Flags().StringVar(&req.Procedure, "procedure", "", "only this procedure")
	export.Flags().StringVar(&req.Environment, "env", "", "only runs in this environment")
	export.Flags().StringVar(&req.Run, "run", "", "one run's bundle instead of a period")
	export.Flags().StringVar(&out, "out", "", "bundle file to write")
	var key string
	verify := &cobra.Command{
		Use:   "verify BUNDLE --key KEY",
		Short: "Verify a bundle offline: signatures, file hashes, inclusion proofs, output digests",
		Long: "Verify an evidence bundle with only the log's public key (from 'airlock audit' / /api/v1/audit/key,\n" +
			"obtained out of band): no server, no database. Any edited, missing or added file is named, and any run\n" +
			"whose output differs from the digest its run.finish event certifies, or is labelled pruned without the\n" +
			"run.output_prune event that removed it in the bundle. Exit 0 only when everything checks.",
		Example: "  airlock evidence verify airlock-2026Q4.zip --key 'airlock+1a2b3c4d+AQ…'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return usageError{fmt.Errorf("--key is required: the log's verifier key, obtained out of band (not from the bundle)")}
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			res, err := evidence.Verify(b, strings.TrimSpace(key))
			if err != nil {
				return err
			}
			if err := a.print(res, func(w io.Writer) {
				for _, p := range res.Problems {
					fmt.Fprintf(w, "%s: %s\n", p.File, p.Detail)
				}
				if res.OK() {
					fmt.Fprintf(w, "OK: %d events proven against the checkpoint at size %d, %d runs\n", res.Events, res.Size, res.Runs)
				} else {
					fmt.Fprintf(w, "FAILED: %d problem(s)\n", len(res.Problems))
				}
			}); err != nil {
				return err
			}
			if !res.OK() {
				return exitCode(1)
			}
			return nil
		},
	}
	verify.Flags().StringVar(&key, "key", "", "the log's verifier key")
	c.AddCommand(export, verify)
	return c
}
