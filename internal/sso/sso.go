// Package sso wraps OpenID Connect (github.com/coreos/go-oidc and
// golang.org/x/oauth2): the authorization-code flow with PKCE, state and
// nonce, and verification of the ID token's signature, issuer, audience,
// expiry and nonce. It returns the claims Airlock uses; identity decides
// what they mean.
package sso

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Config configures the OIDC client.
type Config struct {
	Issuer        string            `yaml:"issuer"`
	ClientID      string            `yaml:"client_id"`
	ClientSecret  string            `yaml:"client_secret"`
	RedirectURL   string            `yaml:"redirect_url"`
	Scopes        []string          `yaml:"scopes"`
	GroupsClaim   string            `yaml:"groups_claim"`
	UsernameClaim string            `yaml:"username_claim"`
	GroupMap      map[string]string `yaml:"group_map"`
}

// Enabled reports whether SSO is configured.
func (c Config) Enabled() bool { return c.Issuer != "" }

// Provider is a discovered OIDC provider.
type Provider struct {
	cfg      Config
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config
}

// New discovers the provider at cfg.Issuer.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery at %s: %w", cfg.Issuer, err)
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "profile", "email", "groups"}
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	return &Provider{
		cfg:      cfg,
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: p.Endpoint(), Scopes: scopes},
	}, nil
}

// Flow is the per-login state kept by the browser (in an HttpOnly
// cookie) between the redirect to the provider and the callback.
type Flow struct {
	State    string
	Nonce    string
	Verifier string
}

// Start begins a login and returns where to send the browser.
func (p *Provider) Start() (string, Flow) {
	f := Flow{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()}
	url := p.oauth.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	return url, f
}

// Claims are what Airlock takes from a verified ID token.
type Claims struct {
	Issuer   string
	Subject  string
	Username string
	Email    string
	Name     string
	Groups   []string // as the provider named them
}

// ErrRejected wraps every reason a callback is refused.
var ErrRejected = errors.New("sso login rejected")

// Finish exchanges the code and verifies the ID token: signature,
// issuer, audience and expiry (go-oidc), and the nonce (here).
func (p *Provider) Finish(ctx context.Context, state, code string, f Flow) (*Claims, error) {
	if f.State == "" || state != f.State {
		return nil, fmt.Errorf("%w: state does not match", ErrRejected)
	}
	tok, err := p.oauth.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return nil, fmt.Errorf("%w: code exchange: %v", ErrRejected, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return nil, fmt.Errorf("%w: no id_token in token response", ErrRejected)
	}
	return p.Verify(ctx, raw, f.Nonce)
}

// Verify checks a raw ID token and returns its claims.
func (p *Provider) Verify(ctx context.Context, raw, nonce string) (*Claims, error) {
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	if nonce == "" || idt.Nonce != nonce {
		return nil, fmt.Errorf("%w: nonce does not match", ErrRejected)
	}
	var all map[string]any
	if err := idt.Claims(&all); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrRejected, err)
	}
	c := &Claims{Issuer: idt.Issuer, Subject: idt.Subject}
	c.Email, _ = all["email"].(string)
	c.Name, _ = all["name"].(string)
	c.Username, _ = all[p.cfg.UsernameClaim].(string)
	if c.Username == "" && c.Email != "" {
		c.Username, _, _ = strings.Cut(c.Email, "@")
	}
	c.Username = strings.ToLower(c.Username)
	switch g := all[p.cfg.GroupsClaim].(type) {
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok {
				c.Groups = append(c.Groups, s)
			}
		}
	case string:
		c.Groups = strings.Fields(strings.ReplaceAll(g, ",", " "))
	}
	return c, nil
}

// MapGroups turns the provider's group names into Airlock groups through
// the configured map; unmapped groups are ignored, so a provider cannot
// invent membership of a group the admins did not map.
func (p *Provider) MapGroups(groups []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, g := range groups {
		if a, ok := p.cfg.GroupMap[g]; ok && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// LocalPath returns next when it is a path on this site, and "/"
// otherwise: where to go after signing in must never be another site
// ("//evil.example", "/\\evil.example", "https://…").
func LocalPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, `\`) {
		return "/"
	}
	// Browsers drop tabs and newlines from a URL: "/\t/evil.example"
	// would go to another host. No control character passes.
	if strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}
