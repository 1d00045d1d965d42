package fleet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Shell interprets what a simulated node is asked to run, without
// forking. A command line is either
//
//   - the one sshexec.Command builds for a step: the node prints
//     AIRLOCK_PGID=GROUP on stderr, reads (and discards) the environment's
//     bytes from stdin, then runs the step: argv as one command, or for
//     `SHELL -s` the script that follows on stdin;
//   - anything else: a script, run as such (the bare client loop of the
//     benchmarks sends `echo ok`).
//
// A script is commands separated by newlines, `;`, `&&` or `||`, with
// words in single or double quotes or backslash-escaped, `#` comments,
// and `>&2` sending a command's output to stderr. There is no `$`
// expansion, no pipe, no other redirection: such a script is refused with
// exit status 2. The commands:
//
//	echo [-n] WORD...   print the words
//	sleep SECONDS       wait (fractions allowed); a kill ends it
//	exit [N]            end the script with status N (default: the last)
//	true, false, :      status 0, 1, 0
//	yes-bytes N         print N bytes of "y\n" (as `yes | head -c N`)
//	kill [-KILL|-9] [--] -GROUP
//	                    kill the command running as GROUP on this node
//
// Any other command prints "fleet: NAME: command not found" on stderr and
// ends the script with status 127.
type Shell struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Group is the command's process group, as AIRLOCK_PGID reports it.
	Group int
	// Kill kills the command running as a group on the same node.
	Kill func(group int) bool
}

// killed is the status Exec returns for a command that was killed (by
// ctx): the session reports the signal KILL instead of an exit status.
const killed = -1

// stepRE matches the command line sshexec.Command builds (see there):
// the environment's length, and the step's words after "$f".
var stepRE = regexp.MustCompile(`(?s)^echo "AIRLOCK_PGID=\$\$" >&2; .*\bdd bs=1 count=([0-9]+) .* airlock-step "\$f" (.*)$`)

// Exec runs a command line as the node's login shell would.
func (s *Shell) Exec(ctx context.Context, command string) int {
	m := stepRE.FindStringSubmatch(command)
	if m == nil {
		return s.Run(ctx, command)
	}
	fmt.Fprintf(s.Stderr, "AIRLOCK_PGID=%d\n", s.Group)
	envLen, err := strconv.Atoi(m[1])
	if err != nil {
		fmt.Fprintf(s.Stderr, "fleet: environment length %q\n", m[1])
		return 125
	}
	if _, err := io.CopyN(io.Discard, s.Stdin, int64(envLen)); err != nil {
		return 125
	}
	cmds, err := parse(m[2])
	if err != nil || len(cmds) != 1 {
		fmt.Fprintf(s.Stderr, "fleet: step words %q: %v\n", m[2], err)
		return 2
	}
	words := cmds[0].words
	if len(words) == 2 && words[1] == "-s" {
		// A script step: the shell reads its script from stdin.
		script, err := io.ReadAll(s.Stdin)
		if err != nil {
			return 125
		}
		return s.Run(ctx, string(script))
	}
	status, _ := s.command(ctx, command1{words: words}, 0)
	return status
}

// Run runs a script.
func (s *Shell) Run(ctx context.Context, script string) int {
	cmds, err := parse(script)
	if err != nil {
		fmt.Fprintf(s.Stderr, "fleet: %v\n", err)
		return 2
	}
	status := 0
	for _, c := range cmds {
		if (c.op == "&&" && status != 0) || (c.op == "||" && status == 0) {
			continue
		}
		var end bool
		status, end = s.command(ctx, c, status)
		if end || status == killed {
			return status
		}
	}
	return status
}

// command runs one command; end reports that it ends the script (exit,
// an unknown command).
func (s *Shell) command(ctx context.Context, c command1, last int) (status int, end bool) {
	if ctx.Err() != nil {
		return killed, true
	}
	out := s.Stdout
	if c.stderr {
		out = s.Stderr
	}
	if len(c.words) == 0 {
		return last, false
	}
	name, args := c.words[0], c.words[1:]
	switch name {
	case "echo":
		nl := "\n"
		if len(args) > 0 && args[0] == "-n" {
			nl, args = "", args[1:]
		}
		fmt.Fprint(out, strings.Join(args, " ")+nl)
		return 0, false
	case "true", ":":
		return 0, false
	case "false":
		return 1, false
	case "sleep":
		if len(args) != 1 {
			fmt.Fprintln(s.Stderr, "fleet: sleep: expected one duration in seconds")
			return 2, false
		}
		secs, err := strconv.ParseFloat(args[0], 64)
		if err != nil || secs < 0 {
			fmt.Fprintf(s.Stderr, "fleet: sleep: invalid time interval %q\n", args[0])
			return 2, false
		}
		t := time.NewTimer(time.Duration(secs * float64(time.Second)))
		defer t.Stop()
		select {
		case <-t.C:
			return 0, false
		case <-ctx.Done():
			return killed, false
		}
	case "exit":
		if len(args) == 0 {
			return last, true
		}
		n, err := strconv.Atoi(args[0])
		if err != nil {
			fmt.Fprintf(s.Stderr, "fleet: exit: illegal number %q\n", args[0])
			return 2, false
		}
		return n & 0xff, true
	case "yes-bytes":
		n, err := strconv.ParseInt(strings.Join(args, ""), 10, 64)
		if err != nil || n < 0 {
			fmt.Fprintln(s.Stderr, "fleet: yes-bytes: expected one byte count")
			return 2, false
		}
		return s.yes(ctx, out, n), false
	case "kill":
		for len(args) > 0 && (args[0] == "-KILL" || args[0] == "-9" || args[0] == "--") {
			args = args[1:]
		}
		if len(args) != 1 || !strings.HasPrefix(args[0], "-") {
			fmt.Fprintln(s.Stderr, "fleet: kill: expected -GROUP")
			return 2, false
		}
		g, err := strconv.Atoi(args[0][1:])
		if err != nil || s.Kill == nil || !s.Kill(g) {
			fmt.Fprintf(s.Stderr, "fleet: kill: (%s) - No such process\n", args[0][1:])
			return 1, false
		}
		return 0, false
	}
	fmt.Fprintf(s.Stderr, "fleet: %s: command not found\n", name)
	return 127, true
}

func (s *Shell) yes(ctx context.Context, out io.Writer, n int64) int {
	chunk := bytes.Repeat([]byte("y\n"), 16<<10)
	for n > 0 {
		if ctx.Err() != nil {
			return killed
		}
		b := chunk[:min(int64(len(chunk)), n)]
		if _, err := out.Write(b); err != nil {
			return 141 // as a shell reports SIGPIPE
		}
		n -= int64(len(b))
	}
	return 0
}

// command1 is one parsed command: its words, whether its output goes to
// stderr, and how it joins the one before ("", ";", "&&", "||").
type command1 struct {
	words  []string
	stderr bool
	op     string
}

// parse splits a script into commands.
func parse(src string) ([]command1, error) {
	var (
		cmds  []command1
		cur   command1
		word  strings.Builder
		inWd  bool
		quote bool // the word has a quoted part: "" is a word
	)
	endWord := func() error {
		if !inWd {
			return nil
		}
		w := word.String()
		word.Reset()
		inWd = false
		if !quote && w == ">&2" {
			cur.stderr = true
			quote = false
			return nil
		}
		if !quote && strings.ContainsAny(w, "<>|&`") {
			return fmt.Errorf("unsupported syntax in %q (the simulator has no pipes or redirections but >&2)", w)
		}
		quote = false
		cur.words = append(cur.words, w)
		return nil
	}
	endCmd := func(nextOp string) error {
		if err := endWord(); err != nil {
			return err
		}
		if len(cur.words) > 0 {
			cmds = append(cmds, cur)
		}
		cur = command1{op: nextOp}
		return nil
	}
	for i := 0; i < len(src); i++ {
		ch := src[i]
		switch {
		case ch == ' ' || ch == '\t':
			if err := endWord(); err != nil {
				return nil, err
			}
		case ch == '\n' || ch == ';':
			if err := endCmd(";"); err != nil {
				return nil, err
			}
		case (ch == '&' || ch == '|') && i+1 < len(src) && src[i+1] == ch && !inWd:
			if err := endCmd(src[i : i+2]); err != nil {
				return nil, err
			}
			i++
		case ch == '#' && !inWd:
			for i < len(src) && src[i] != '\n' {
				i++
			}
			i--
		case ch == '$':
			return nil, fmt.Errorf("unsupported $ expansion at offset %d", i)
		case ch == '\\':
			if i+1 < len(src) {
				i++
				if src[i] != '\n' {
					word.WriteByte(src[i])
					inWd = true
				}
			}
		case ch == '\'':
			j := strings.IndexByte(src[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote at offset %d", i)
			}
			word.WriteString(src[i+1 : i+1+j])
			inWd, quote = true, true
			i += j + 1
		case ch == '"':
			j := i + 1
			for ; j < len(src) && src[j] != '"'; j++ {
				switch src[j] {
				case '$', '`':
					return nil, fmt.Errorf("unsupported expansion in double quotes at offset %d", j)
				case '\\':
					if j+1 < len(src) && strings.IndexByte("\"\\$`", src[j+1]) >= 0 {
						j++
					}
				}
				word.WriteByte(src[j])
			}
			if j >= len(src) {
				return nil, fmt.Errorf("unterminated double quote at offset %d", i)
			}
			inWd, quote = true, true
			i = j
		default:
			word.WriteByte(ch)
			inWd = true
		}
	}
	if err := endCmd(""); err != nil {
		return nil, err
	}
	return cmds, nil
}
