// Command airlock is both the Airlock server (serve, demo) and its CLI.
// This package is wiring only: flags, output and exit codes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

type usageError struct{ error }

func main() {
	if os.Getenv("AIRLOCK_PPROF_LISTEN") == "" {
		// Nothing can read a heap profile without the pprof listener
		// (serve.go): do not sample one. The runtime's sampling keeps
		// a record per allocating stack in memory that is never freed,
		// about 1 MiB of a server's RSS after a few thousand runs.
		runtime.MemProfileRate = 0
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	if err.Error() != "" {
		fmt.Fprintln(stderr, "airlock:", err)
	}
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "required flag") {
		return exitUsage
	}
	return exitFail
}

// app carries what every command shares.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	output         string
	profile        string
	// rawOutput: a run's output goes to the terminal as it is, control
	// characters included (runs logs --raw).
	rawOutput bool
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "airlock",
		Short:         "Self-service operations that Security and Compliance can sign off",
		Long:          "Airlock runs reviewed, pre-defined procedures on behalf of requesters, decides by policy who may run what where, and keeps tamper-evident evidence of every act.\n\nThe same binary is the server (serve, demo) and the CLI.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "table", "output format: table, json or yaml")
	root.PersistentFlags().StringVar(&a.profile, "profile", "", "login profile to use (default: the current one)")
	root.AddCommand(
		a.serveCmd(), a.demoCmd(), a.versionCmd(),
		a.loginCmd(), a.logoutCmd(), a.profilesCmd(), a.whoamiCmd(), a.passwdCmd(),
		a.tokensCmd(), a.usersCmd(), a.groupsCmd(),
		a.proceduresCmd(), a.proposeCmd(), a.reviewCmd(), a.policyCmd(),
		a.runCmd(), a.runsCmd(), a.decideCmd("approve"), a.decideCmd("deny"), a.nodesCmd(), a.secretsCmd(), a.auditCmd(), a.evidenceCmd(),
		a.notifyCmd(),
		a.schedulesCmd(), a.triggersCmd(),
	)
	// Unknown commands and wrong argument counts are usage errors too.
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
	if c.HasSubCommands() && c.RunE == nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
			}
			return nil
		}
		c.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
	}
}

// print writes v as JSON or YAML when asked, else calls table.
func (a *app) print(v any, table func(w io.Writer)) error {
	switch a.output {
	case "json":
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return err
		}
		enc := yaml.NewEncoder(a.stdout)
		enc.SetIndent(2)
		return enc.Encode(generic)
	case "table", "":
		table(a.stdout)
		return nil
	}
	return usageError{fmt.Errorf("--output: expected table, json or yaml, got %q", a.output)}
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: "  airlock version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			info := map[string]string{"version": version}
			if bi, ok := debug.ReadBuildInfo(); ok {
				info["go"] = bi.GoVersion
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						info["commit"] = s.Value
					}
				}
			}
			return a.print(info, func(w io.Writer) {
				fmt.Fprintf(w, "airlock %s", info["version"])
				if c := info["commit"]; c != "" {
					fmt.Fprintf(w, " (%s)", c[:min(12, len(c))])
				}
				fmt.Fprintf(w, " %s\n", info["go"])
			})
		},
	}
}
