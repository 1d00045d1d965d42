// Package client is the HTTP client the CLI commands share: login
// profiles stored under $AIRLOCK_CONFIG_DIR, AIRLOCK_SERVER and
// AIRLOCK_TOKEN overrides, and JSON calls whose error bodies come back as
// *airlock.Error with the server's code and message.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
)

// Profile is one saved login.
type Profile struct {
	Server   string `json:"server"`
	Username string `json:"username,omitempty"`
	Token    string `json:"token,omitempty"`
	TokenID  string `json:"token_id,omitempty"`
}

// Profiles is the profile file.
type Profiles struct {
	Current  string              `json:"current"`
	Profiles map[string]*Profile `json:"profiles"`
}

// ConfigDir is $AIRLOCK_CONFIG_DIR, or ~/.config/airlock.
func ConfigDir() (string, error) {
	if d := os.Getenv("AIRLOCK_CONFIG_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "airlock"), nil
}

func profilesPath() (string, error) {
	d, err := ConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "profiles.json"), nil
}

// LoadProfiles reads the profile file; a missing file is empty.
func LoadProfiles() (*Profiles, error) {
	ps := &Profiles{Current: "default", Profiles: map[string]*Profile{}}
	p, err := profilesPath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return ps, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, ps); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if ps.Profiles == nil {
		ps.Profiles = map[string]*Profile{}
	}
	return ps, nil
}

// Save writes the profile file with mode 0600 (the directory 0700),
// atomically.
func (ps *Profiles) Save() error {
	p, err := profilesPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(ps, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".profiles-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// Client calls one Airlock server.
type Client struct {
	Server  string
	Token   string
	HTTP    *http.Client
	Headers map[string]string // extra request headers
}

// FromProfile returns a client for the named profile ("" for the current
// one), with AIRLOCK_SERVER and AIRLOCK_TOKEN taking precedence.
func FromProfile(name string) (*Client, error) {
	ps, err := LoadProfiles()
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = ps.Current
	}
	c := &Client{HTTP: &http.Client{Timeout: 60 * time.Second}}
	if p := ps.Profiles[name]; p != nil {
		c.Server, c.Token = p.Server, p.Token
	}
	if v := os.Getenv("AIRLOCK_SERVER"); v != "" {
		c.Server = v
	}
	if v := os.Getenv("AIRLOCK_TOKEN"); v != "" {
		c.Token = v
	}
	if c.Server == "" {
		return nil, airlock.Errorf(airlock.Unauthenticated, "no server: run 'airlock login --server URL' or set AIRLOCK_SERVER")
	}
	c.Server = strings.TrimRight(c.Server, "/")
	return c, nil
}

// Do sends a JSON request and decodes a JSON response into out (may be
// nil). Error responses become *airlock.Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &airlock.Error{Kind: airlock.Unavailable, Message: "cannot reach " + c.Server, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct {
				Code, Message, Field string
			} `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
			return airlock.Errorf(airlock.Internal, "%s %s: HTTP %d", method, path, resp.StatusCode)
		}
		return &airlock.Error{Kind: airlock.Kind(e.Error.Code), Message: e.Error.Message, Field: e.Error.Field}
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, out)
}
