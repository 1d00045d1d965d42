package server

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/notify/email"
	notifywebhook "github.com/airlockhq/airlock/internal/notify/webhook"
	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/store"
)

// directory answers the dispatcher's "who is concerned" with the
// services that decide.
type directory struct{ s *Server }

func (d directory) RunApprovers(ctx context.Context, r *store.Run) ([]string, error) {
	return d.s.Runs.Approvers(ctx, r)
}

func (d directory) Reviewers(ctx context.Context, v *store.ProcedureVersion) ([]string, error) {
	return d.s.Review.Reviewers(ctx, v)
}

func (d directory) StandingApprovers(ctx context.Context, st *store.Standing) ([]string, error) {
	return d.s.Standing.Approvers(ctx, st)
}

func (d directory) Permitted(ctx context.Context, action string) ([]string, error) {
	return d.s.Authz.PermittedUsers(ctx, action)
}

// readSecretFile reads a credential from a file named in the
// configuration, trimmed.
func readSecretFile(key, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s: %s is empty", key, path)
	}
	return v, nil
}

// buildNotify makes the configured channels and the dispatcher. With no
// channel, nothing is queued and no dispatcher runs.
func (s *Server) buildNotify() error {
	cfg := s.Config.Notify
	channels := map[string]notify.Channel{}
	webhooks := map[string][]string{}
	for i, w := range cfg.Webhooks {
		raw, err := readSecretFile(fmt.Sprintf("notify.webhooks[%d].secret_file", i), w.SecretFile)
		if err != nil {
			return err
		}
		key, err := notifywebhook.ParseSecret(raw)
		if err != nil {
			return fmt.Errorf("notify.webhooks[%d].secret_file: %w", i, err)
		}
		ch := notifywebhook.New(w.Name, w.URL, key, nil, s.now)
		channels[ch.Name()] = ch
		webhooks[w.Name] = w.Kinds
	}
	if e := cfg.Email; e.Host != "" {
		password := ""
		if e.PasswordFile != "" {
			var err error
			if password, err = readSecretFile("notify.email.password_file", e.PasswordFile); err != nil {
				return err
			}
		}
		ch, err := email.New(e, password)
		if err != nil {
			return err
		}
		channels[ch.Name()] = ch
	}
	if err := s.chatChannels(channels); err != nil {
		return err
	}
	if len(channels) == 0 {
		return nil
	}
	owners := map[string][]notify.Route{}
	for _, o := range cfg.Owners {
		owners[o.Team] = append(owners[o.Team], notify.Route{Kinds: o.Kinds, Email: o.Email, Slack: o.Slack, Teams: o.Teams, Webhooks: o.Webhooks})
	}
	s.Store.SetOutboxTypes(notify.OutboxTypes)
	s.Notify = &notify.Dispatcher{Store: s.Store, Log: s.Log, Owner: airlock.NewID("dsp", s.now()), Now: s.now,
		Lease: cfg.Lease, MaxAttempts: cfg.MaxAttempts, MaxBackoff: cfg.MaxBackoff, ExpiryWarning: cfg.ExpiryWarning,
		Planner: &notify.Planner{Store: s.Store, Directory: directory{s}, PublicURL: s.Config.PublicURL, Channels: channels,
			Webhooks: webhooks, Owners: owners, ProcedureRoutes: s.procedureRoutes, SlackIDs: s.slackIDs}}
	names := make([]string, 0, len(channels))
	for n := range channels {
		names = append(names, n)
	}
	s.Log.Info("notifications", "channels", strings.Join(names, ","))
	return nil
}

// procedureRoutes reads the notify: rules of a procedure's version in
// service: what its reviewers approved.
func (s *Server) procedureRoutes(ctx context.Context, name string) ([]notify.Route, error) {
	p, err := s.Store.ProcedureGetByName(ctx, name)
	if err != nil || p.ActiveVersionID == "" {
		return nil, nil // gone, or never in service: no routes of its own
	}
	v, err := s.Store.ProcedureVersionGet(ctx, p.ActiveVersionID)
	if err != nil {
		return nil, err
	}
	def, err := procedure.FromCanonical(v.Definition)
	if err != nil {
		return nil, err
	}
	var out []notify.Route
	for _, r := range def.Notify {
		out = append(out, notify.Route{Kinds: r.Kinds, Email: r.Email, Slack: r.Slack, Teams: r.Teams, Webhooks: r.Webhooks})
	}
	return out, nil
}
