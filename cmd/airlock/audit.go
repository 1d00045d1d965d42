package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/config"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/server"
)

// splitNotes splits a file of signed notes written one after another.
func splitNotes(b string) []string {
	var notes []string
	var cur []string
	sawSig := false
	for _, line := range strings.Split(b, "\n") {
		isSig := strings.HasPrefix(line, "— ")
		if sawSig && !isSig {
			notes = append(notes, strings.Join(cur, "\n")+"\n")
			cur, sawSig = nil, false
			if line == "" {
				continue
			}
		}
		cur = append(cur, line)
		sawSig = sawSig || isSig
	}
	if sawSig {
		notes = append(notes, strings.Join(cur, "\n")+"\n")
	}
	return notes
}

// auditVerifyResult is what audit verify found: the log's report, and
// the runs' stored output against the digests the log certifies.
type auditVerifyResult struct {
	*audit.Report
	Output *evidence.OutputReport `json:"output"`
}

// OK reports whether the log and every run's output hold. (The log is
// verified after the output check, so past every event it relied on.)
func (r auditVerifyResult) OK() bool { return r.Report.OK() && r.Output.OK() }

func (a *app) auditCmd() *cobra.Command {
	c := &cobra.Command{Use: "audit", Short: "Verify, read and checkpoint the tamper-evident audit log"}
	var f serveFlags
	var keyArg string
	var external []string
	var allowNoCheckpoint bool
	verify := &cobra.Command{
		Use:   "verify [--config F | --data DIR] [--from-checkpoint FILE]...",
		Short: "Recompute the audit tree from storage and check every checkpoint",
		Long: "Open the database the configuration names (as an auditor with database access), recompute the Merkle tree\n" +
			"from the stored events, compare it with the hashes recorded at each append, and check every stored\n" +
			"checkpoint and every checkpoint given with --from-checkpoint (e.g. ones published outside the database)\n" +
			"against it. Reports edited, deleted, inserted, reordered or truncated events by position.\n" +
			"Then checks every finished run's stored output against the digest its run.finish event certifies, and\n" +
			"names each run whose output differs or is gone without a run.output_prune event that removed it.\n" +
			"Exit 0 only when everything holds.",
		Example: "  airlock audit verify --data /var/lib/airlock --from-checkpoint /backup/checkpoints.txt",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := server.OpenStoreReadOnly(ctx, cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			vkey := keyArg
			if vkey == "" {
				if vkey, err = localVerifierKey(cfg); err != nil {
					return fmt.Errorf("%w (pass --key)", err)
				}
			}
			v, err := note.NewVerifier(vkey)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			var notes []string
			for _, file := range external {
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				notes = append(notes, splitNotes(string(b))...)
			}
			start := time.Now()
			// Output first: the log is then verified past every event
			// the output check relied on.
			out, err := evidence.CheckOutput(ctx, st)
			if err != nil {
				return err
			}
			rep, err := audit.Verify(ctx, st, v, notes)
			if err != nil {
				return err
			}
			res := auditVerifyResult{Report: rep, Output: out}
			if err := a.print(res, func(w io.Writer) {
				for _, p := range rep.Problems {
					fmt.Fprintln(w, p.String())
				}
				if rep.Omitted > 0 {
					fmt.Fprintf(w, "… and %d more\n", rep.Omitted)
				}
				for _, f := range out.Findings {
					fmt.Fprintln(w, f.Detail)
				}
				if n := len(out.Uncertified); n > 0 {
					ids := strings.Join(out.Uncertified[:min(n, 10)], ", ")
					if n > 10 {
						ids += ", …"
					}
					fmt.Fprintf(w, "note: %d finished run(s) have stored output that no run.finish event certifies (the reaper finished them "+
						"before it recorded a digest), so it is not evidence: %s\n", n, ids)
				}
				verdict := "OK"
				switch {
				case !res.OK():
					verdict = fmt.Sprintf("FAILED: %d problem(s)", int64(len(rep.Problems))+rep.Omitted+int64(len(out.Findings)))
				case rep.Checkpoints == 0 && !allowNoCheckpoint:
					fmt.Fprintln(w, "no signed checkpoint was checked, so nothing vouches for the log's history: pass --from-checkpoint with "+
						"checkpoints kept outside the database (or --allow-no-checkpoint to accept a log that was never signed)")
					verdict = "FAILED"
				}
				fmt.Fprintf(w, "%s: %d events, %d checkpoints checked, root %s; output of %d runs checked, %d of them pruned (%s)\n", verdict,
					rep.Events, rep.Checkpoints, rep.RootHash, out.Runs, out.Pruned, time.Since(start).Round(time.Millisecond))
			}); err != nil {
				return err
			}
			if !res.OK() || rep.Checkpoints == 0 && !allowNoCheckpoint {
				return exitCode(1)
			}
			return nil
		},
	}
	f.register(verify)
	verify.Flags().BoolVar(&allowNoCheckpoint, "allow-no-checkpoint", false, "accept a log with no signed checkpoint to check (a new, never signed log)")
	verify.Flags().StringVar(&keyArg, "key", "", "checkpoint verifier key (default: the one in the data directory)")
	verify.Flags().StringArrayVar(&external, "from-checkpoint", nil, "file of signed checkpoints kept outside the database (repeatable)")

	var typ, actor, subject string
	var n int
	var follow bool
	printEvents := func(w io.Writer, evs []api.AuditEventJSON) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, e := range evs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format("2006-01-02 15:04:05"), e.Type, e.Actor, e.Outcome, e.Subject, string(e.Details))
		}
		tw.Flush()
	}
	fetch := func(ctx context.Context, after int64, limit int) ([]api.AuditEventJSON, error) {
		q := url.Values{"after": {fmt.Sprint(after)}, "limit": {fmt.Sprint(limit)}}
		for k, v := range map[string]string{"type": typ, "actor": actor, "subject": subject} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var resp api.ListResponse[api.AuditEventJSON]
		err := a.call(ctx, "GET", "/api/v1/audit/events?"+q.Encode(), nil, &resp)
		return resp.Items, err
	}
	search := &cobra.Command{
		Use:     "search [--type T] [--actor A] [--subject S]",
		Short:   "Search audit events",
		Example: "  airlock audit search --type run.approve_denied\n  airlock audit search --actor bob -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var all []api.AuditEventJSON
			after := int64(-1)
			for {
				evs, err := fetch(cmd.Context(), after, 1000)
				if err != nil {
					return err
				}
				all = append(all, evs...)
				if len(evs) < 1000 {
					break
				}
				after = evs[len(evs)-1].Seq
			}
			return a.print(all, func(w io.Writer) { printEvents(w, all) })
		},
	}
	tail := &cobra.Command{
		Use:     "tail [-n N] [-f]",
		Short:   "Show the newest audit events; -f keeps following",
		Example: "  airlock audit tail -n 50 -f",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cp api.CheckpointJSON
			// The head size: the newest checkpoint, or count from events.
			after := int64(-1)
			if err := a.call(cmd.Context(), "GET", "/api/v1/audit/checkpoint", nil, &cp); err == nil {
				after = max(-1, cp.Size-int64(n)-1)
			}
			for {
				evs, err := fetch(cmd.Context(), after, 1000)
				if err != nil {
					return err
				}
				if len(evs) > 0 {
					printEvents(a.stdout, evs)
					after = evs[len(evs)-1].Seq
				}
				if !follow {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		},
	}
	for _, cc := range []*cobra.Command{search, tail} {
		cc.Flags().StringVar(&typ, "type", "", "event type, e.g. run.approve")
		cc.Flags().StringVar(&actor, "actor", "", "actor username or ID")
		cc.Flags().StringVar(&subject, "subject", "", "subject ID, e.g. a run ID")
	}
	tail.Flags().IntVarP(&n, "lines", "n", 20, "how many recent events")
	tail.Flags().BoolVarP(&follow, "follow", "f", false, "keep following")
	checkpoint := &cobra.Command{
		Use:     "checkpoint",
		Short:   "Sign a checkpoint now and print it (keep it somewhere the database admins cannot write)",
		Example: "  airlock audit checkpoint >> /secure/airlock-checkpoints.txt",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cp api.CheckpointJSON
			if err := a.call(cmd.Context(), "POST", "/api/v1/audit/checkpoint", nil, &cp); err != nil {
				return err
			}
			return a.print(cp, func(w io.Writer) { fmt.Fprintln(w, cp.Note) })
		},
	}
	var kf serveFlags
	key := &cobra.Command{
		Use:   "key [--config F | --data DIR]",
		Short: "Print the audit log's public (verifier) key",
		Long: "Print the key that checkpoints and evidence bundles are verified with. With --config or --data it is\n" +
			"read from the data directory on this host (what to pin: the key `airlock serve` printed at first start);\n" +
			"without, it is asked of the server one is logged in to. An auditor pins the key once, out of band, and\n" +
			"does not fetch it again from the server being checked.",
		Example: "  airlock audit key --data /var/lib/airlock > airlock-audit.pub\n" +
			"  airlock evidence verify q4.zip --key \"$(cat airlock-audit.pub)\"",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Key    string `json:"key"`
				Origin string `json:"origin,omitempty"`
			}
			if kf.config != "" || kf.data != "" {
				cfg, err := kf.load(cmd)
				if err != nil {
					return err
				}
				if out.Key, err = localVerifierKey(cfg); err != nil {
					return err
				}
				out.Origin = cfg.Audit.Origin
			} else if err := a.call(cmd.Context(), "GET", "/api/v1/audit/key", nil, &out); err != nil {
				return err
			}
			return a.print(out, func(w io.Writer) { fmt.Fprintln(w, out.Key) })
		},
	}
	kf.register(key)
	key.Flags().MarkHidden("listen")
	c.AddCommand(verify, search, tail, checkpoint, key)
	return c
}

// localVerifierKey reads the audit log's public key from the key file
// in the configuration's data directory (its last field).
func localVerifierKey(cfg config.Config) (string, error) {
	path := cfg.Audit.KeyFile
	if path == "" {
		path = filepath.Join(cfg.Data, "audit.key")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("verifier key: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) < 1 {
		return "", fmt.Errorf("verifier key: %s is empty", path)
	}
	return fields[len(fields)-1], nil
}
