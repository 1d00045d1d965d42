// Package harness is what the benchmark commands share: a JSON client
// for Airlock's API as a user's client talks to it, installing a
// procedure under review, and the server process's CPU and memory from
// /proc.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Client calls an Airlock server's API.
type Client struct {
	Base string // the server's URL, without a trailing slash
	HC   *http.Client
}

// Do sends in (as JSON, if not nil) with the bearer token (if any) and
// headers, and decodes the answer into out (if not nil); an answer of
// 300 or more is an error with its body.
func (c *Client) Do(ctx context.Context, method, path, token string, in, out any, hdr map[string]string) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.HC.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Login signs in with a password and returns an API token named name.
func (c *Client) Login(ctx context.Context, user, password, name string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	err := c.Do(ctx, "POST", "/api/v1/auth/token", "", map[string]string{"username": user, "password": password, "token_name": name}, &out, nil)
	return out.Token, err
}

// Install proposes a procedure's source with the author's token and
// approves it with the reviewer's (in the demo: alice and bob, for a
// low-risk procedure).
func (c *Client) Install(ctx context.Context, source, author, reviewer, comment string) error {
	var prop struct {
		Version struct {
			ID     string `json:"id"`
			Digest string `json:"digest"`
		} `json:"version"`
	}
	if err := c.Do(ctx, "POST", "/api/v1/versions", author, map[string]string{"source": source}, &prop, nil); err != nil {
		return err
	}
	return c.Do(ctx, "POST", "/api/v1/versions/"+prop.Version.ID+"/reviews", reviewer,
		map[string]string{"decision": "approve", "digest": prop.Version.Digest, "comment": comment}, nil, nil)
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Loadavg is the machine's load average, as uptime prints it.
func Loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// CPUTicks reads a process's own CPU time and its waited-for children's,
// in clock ticks (/proc/PID/stat fields 14+15 and 16+17).
func CPUTicks(pid int) (self, children int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if pid == 0 || err != nil {
		return 0, 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	// After the command: state is field 3, so utime (14) is f[11].
	return n(11) + n(12), n(13) + n(14)
}

// StatusMiB reads a size field of a process (VmRSS, VmHWM), in MiB.
func StatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
