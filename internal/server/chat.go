package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/airlockhq/airlock/internal/api"
	"github.com/airlockhq/airlock/internal/notify"
	"github.com/airlockhq/airlock/internal/notify/slack"
	"github.com/airlockhq/airlock/internal/notify/teams"
)

// wireChat serves Slack's callbacks (the /airlock command and the
// Approve and Deny buttons) when notify.slack.signing_secret_file is
// set, and returns their handler (nil otherwise).
func (s *Server) wireChat(h *api.Handler) (*slack.Handler, error) {
	sc := s.Config.Notify.Slack
	if sc.SigningSecretFile == "" {
		return nil, nil
	}
	secret, err := readSecretFile("notify.slack.signing_secret_file", sc.SigningSecretFile)
	if err != nil {
		return nil, err
	}
	sh := slack.NewHandler(slack.HandlerConfig{Store: s.Store, Identity: s.Identity, Runs: s.Runs, SigningSecret: secret,
		PublicURL: s.Config.PublicURL, Log: s.Log, Now: s.now, APIURL: sc.APIURL})
	h.SlackCommands, h.SlackInteractions = sh.Commands(), sh.Interactions()
	return sh, nil
}

// chatChannels adds the Slack channel (when notify.slack.bot_token_file
// is set) and one channel per notify.teams entry to channels, by name.
func (s *Server) chatChannels(channels map[string]notify.Channel) error {
	cfg := s.Config.Notify
	client := &http.Client{Timeout: 30 * time.Second}
	if f := cfg.Slack.BotTokenFile; f != "" {
		tok, err := readSecretFile("notify.slack.bot_token_file", f)
		if err != nil {
			return err
		}
		ch := slack.New(tok, cfg.Slack.APIURL, client)
		channels[ch.Name()] = ch
	}
	for i, t := range cfg.Teams {
		u, err := readSecretFile(fmt.Sprintf("notify.teams[%d].url_file", i), t.URLFile)
		if err != nil {
			return err
		}
		ch := teams.New(t.Name, u, client)
		channels[ch.Name()] = ch
	}
	return nil
}

// slackIDs are the Slack users a person linked to their account: where
// the Slack channel sends them direct messages (notify.Planner.SlackIDs).
func (s *Server) slackIDs(ctx context.Context, userID string) ([]string, error) {
	ls, err := s.Store.ChatLinkList(ctx, userID)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, l := range ls {
		if l.Provider == "slack" {
			ids = append(ids, l.ExternalID)
		}
	}
	return ids, nil
}
