package web_test

import (
	"net"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/airlockhq/airlock/internal/config"
)

// TestSignInWithSSO clicks "Sign in with SSO" in the browser against a
// real OIDC provider running in the test (mockoidc): the user comes back
// signed in, on the page they first asked for, with the groups the
// provider's claims map to.
func TestSignInWithSSO(t *testing.T) {
	idp, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := idp.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Shutdown() })
	oc := idp.Config()
	s := newSite(t, func(c *config.Config) {
		c.OIDC.Issuer, c.OIDC.ClientID, c.OIDC.ClientSecret = oc.Issuer, oc.ClientID, oc.ClientSecret
		c.OIDC.GroupMap = map[string]string{"idp-ops": "ops"}
	})
	idp.QueueUser(&mockoidc.MockUser{Subject: "sub-gina", Email: "gina@example.com", PreferredUsername: "gina",
		EmailVerified: true, Groups: []string{"idp-ops"}})

	ctx := s.anonymous(t)
	var user, heading string
	err = chromedp.Run(ctx,
		chromedp.Navigate(s.url+"/runs"), // asks to sign in first
		chromedp.WaitVisible("#sso", chromedp.ByID),
		chromedp.Click("#sso", chromedp.ByID),
		chromedp.WaitVisible("header", chromedp.ByQuery),
		chromedp.Text("header form .muted", &user, chromedp.ByQuery),
		chromedp.Text("h1", &heading, chromedp.ByQuery),
	)
	screenshot(t, ctx, "sso-signed-in")
	if err != nil {
		t.Fatal(err)
	}
	if user != "gina" || !strings.Contains(heading, "Runs") {
		t.Fatalf("after SSO: user %q on %q, want gina on Runs", user, heading)
	}
	u, err := s.srv.Store.UserGetByUsername(t.Context(), "gina")
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := s.srv.Store.GroupListForUser(t.Context(), u.ID)
	if len(gs) != 1 || gs[0].Name != "ops" {
		t.Fatalf("gina's groups: %+v, want ops from the provider's idp-ops", gs)
	}
}
