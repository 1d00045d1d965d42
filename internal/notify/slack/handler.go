package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/run"
	"github.com/airlockhq/airlock/internal/store"
)

// MaxSkew is how far a request's X-Slack-Request-Timestamp may be from
// now; a signature is remembered (chat_seen) for twice as long, so a
// replay within the window is refused.
const MaxSkew = 5 * time.Minute

// maxBody bounds what is read of a request before it is verified.
const maxBody = 256 << 10

// HandlerConfig is what the endpoints need.
type HandlerConfig struct {
	Store    store.Store
	Identity *identity.Service
	Runs     *run.Service
	// SigningSecret is the Slack app's signing secret.
	SigningSecret string
	// PublicURL is Airlock's address, for the links in replies.
	PublicURL string
	Log       *slog.Logger
	// Now is the clock timestamps are checked against; nil means
	// time.Now.
	Now func() time.Time
	// Client posts replies to response_url; nil means a client with a
	// 10-second timeout.
	Client *http.Client
	// APIURL is notify.slack.api_url: a Slack-compatible server's replies
	// go to its host. Otherwise a response_url must be Slack's
	// (https://hooks.slack.com/…).
	APIURL string
}

// Handler serves the slash command and the interactions endpoints.
type Handler struct {
	cfg      HandlerConfig
	refusals *refusals
	replies  sync.WaitGroup
}

// NewHandler returns the endpoints' handler.
func NewHandler(cfg HandlerConfig) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	h := &Handler{cfg: cfg}
	h.refusals = newRefusals(cfg.Store, cfg.Log, cfg.Now)
	return h
}

// Commands is POST /api/v1/chat/slack/commands: the /airlock slash
// command. `/airlock link CODE` links the Slack user who types it to the
// Airlock account that issued CODE.
func (h *Handler) Commands() http.Handler { return http.HandlerFunc(h.commands) }

// Interactions is POST /api/v1/chat/slack/interactions: the Approve and
// Deny buttons.
func (h *Handler) Interactions() http.Handler { return http.HandlerFunc(h.interactions) }

// Close records the refusals still being counted and waits for the
// replies in flight. Call it when the server stops.
func (h *Handler) Close(ctx context.Context) {
	h.refusals.flush(ctx, true)
	h.replies.Wait()
}

// Wait waits for the replies in flight to be posted.
func (h *Handler) Wait() { h.replies.Wait() }

// FlushRefusals records the refusals counted in windows that have
// closed (a sweep does it by itself).
func (h *Handler) FlushRefusals(ctx context.Context) { h.refusals.flush(ctx, false) }

// Refusal reasons, as audited.
const (
	ReasonBadSignature = "bad signature"
	ReasonStale        = "stale timestamp"
	ReasonReplay       = "replayed request"
	ReasonNotLinked    = "slack user not linked"
	ReasonUnknownCode  = "unknown link code"
	ReasonMalformed    = "malformed payload"
)

// verify reads the body and checks that Slack sent it, just now, for
// the first time. On failure it has answered (401) and counted the
// refusal.
func (h *Handler) verify(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		h.refuse(w, r, http.StatusRequestEntityTooLarge, ReasonMalformed, nil)
		return nil, false
	}
	now := h.cfg.Now()
	ts, err := strconv.ParseInt(r.Header.Get("X-Slack-Request-Timestamp"), 10, 64)
	if err != nil {
		h.refuse(w, r, http.StatusUnauthorized, ReasonBadSignature, nil)
		return nil, false
	}
	// NewSecretsVerifier checks the v0 HMAC over "v0:TIMESTAMP:BODY",
	// and the timestamp against the wall clock; the timestamp is checked
	// against Airlock's clock as well, below, so that both agree.
	sv, err := slack.NewSecretsVerifier(r.Header, h.cfg.SigningSecret)
	if errors.Is(err, slack.ErrExpiredTimestamp) {
		h.refuse(w, r, http.StatusUnauthorized, ReasonStale, nil)
		return nil, false
	}
	if err == nil {
		sv.Write(body)
		err = sv.Ensure()
	}
	if err != nil {
		h.refuse(w, r, http.StatusUnauthorized, ReasonBadSignature, nil)
		return nil, false
	}
	if d := now.Sub(time.Unix(ts, 0)); d > MaxSkew || d < -MaxSkew {
		h.refuse(w, r, http.StatusUnauthorized, ReasonStale, nil)
		return nil, false
	}
	var fresh bool
	sig := r.Header.Get("X-Slack-Signature")
	if err := h.cfg.Store.Update(r.Context(), func(tx store.Tx) error {
		var err error
		fresh, err = tx.ChatSeenAdd(r.Context(), sig, now, now.Add(-2*MaxSkew))
		return err
	}); err != nil {
		h.cfg.Log.Error("slack: record a request signature", "err", err)
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return nil, false
	}
	if !fresh {
		h.refuse(w, r, http.StatusUnauthorized, ReasonReplay, nil)
		return nil, false
	}
	return body, true
}

// refuse answers a request refused before any service saw it, and
// counts it for the audit log (refusals).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, reason string, details map[string]any) {
	h.refusals.record(r.Context(), reason, details)
	if status != http.StatusOK {
		http.Error(w, reason, status)
	}
}

// ephemeral is a reply only the clicking or typing user sees.
type ephemeral struct {
	ResponseType    string `json:"response_type"`
	Text            string `json:"text"`
	ReplaceOriginal bool   `json:"replace_original"`
}

func writeEphemeral(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ephemeral{ResponseType: "ephemeral", Text: text})
}

func (h *Handler) accountURL() string { return h.cfg.PublicURL + "/account" }
func (h *Handler) runURL(id string) string {
	return h.cfg.PublicURL + "/runs/" + url.PathEscape(id)
}

func (h *Handler) notLinked() string {
	return "Link your account first: get a code on your Airlock account page (" + Escape(h.accountURL()) +
		") and type `/airlock link CODE` here. Nothing was done."
}

func (h *Handler) commands(w http.ResponseWriter, r *http.Request) {
	body, ok := h.verify(w, r)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		h.refuse(w, r, http.StatusBadRequest, ReasonMalformed, nil)
		return
	}
	account := identity.ChatAccount{Provider: "slack", TeamID: form.Get("team_id"), ExternalID: form.Get("user_id")}
	verb, arg, _ := strings.Cut(strings.TrimSpace(form.Get("text")), " ")
	switch strings.ToLower(verb) {
	case "link":
		if account.TeamID == "" || account.ExternalID == "" {
			h.refuse(w, r, http.StatusBadRequest, ReasonMalformed, nil)
			return
		}
		ctx := h.viaSlack(r.Context())
		u, err := h.cfg.Identity.LinkChat(ctx, account, strings.TrimSpace(arg))
		switch {
		case errors.Is(err, identity.ErrUnknownLinkCode):
			h.refusals.record(ctx, ReasonUnknownCode, slackUser(account))
			writeEphemeral(w, airlock.ErrorMessage(err)+" ("+Escape(h.accountURL())+")")
		case err != nil:
			if airlock.ErrorKind(err) == airlock.Internal || airlock.ErrorKind(err) == "" {
				h.cfg.Log.Error("slack: link", "err", err)
			}
			writeEphemeral(w, "Not linked: "+Escape(airlock.ErrorMessage(err)))
		default:
			writeEphemeral(w, "Linked: this Slack account acts as Airlock user *"+Escape(u.Username)+
				"* when you approve or deny runs here. Unlink it on your account page ("+Escape(h.accountURL())+").")
		}
	default:
		writeEphemeral(w, "Usage: `/airlock link CODE` links this Slack account to your Airlock account; get the code on "+
			Escape(h.accountURL())+".")
	}
}

// viaSlack marks ctx's audit metadata as coming through Slack.
func (h *Handler) viaSlack(ctx context.Context) context.Context {
	m := audit.MetaFrom(ctx)
	m.Via = "slack"
	return audit.WithMeta(ctx, m)
}

// cap64 shortens an attacker-supplied string before it is audited.
func cap64(s string) string { return cut(s, 64) }

func slackUser(a identity.ChatAccount) map[string]any {
	return map[string]any{"slack_team": cap64(a.TeamID), "slack_user": cap64(a.ExternalID)}
}

func (h *Handler) interactions(w http.ResponseWriter, r *http.Request) {
	body, ok := h.verify(w, r)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	var p slack.InteractionCallback
	if err == nil {
		err = json.Unmarshal([]byte(form.Get("payload")), &p)
	}
	if err != nil {
		h.refuse(w, r, http.StatusBadRequest, ReasonMalformed, nil)
		return
	}
	// Slack is answered at once, always 200 from here on; what happened
	// is told through response_url.
	w.WriteHeader(http.StatusOK)
	if p.Type != slack.InteractionTypeBlockActions {
		return
	}
	var action *slack.BlockAction
	for _, a := range p.ActionCallback.BlockActions {
		if a.ActionID == ActionApprove || a.ActionID == ActionDeny {
			action = a
			break
		}
	}
	if action == nil {
		return // the "Open in Airlock" link button, which needs nothing
	}
	team := p.Team.ID
	if team == "" {
		team = p.User.TeamID
	}
	account := identity.ChatAccount{Provider: "slack", TeamID: team, ExternalID: p.User.ID}
	ctx := h.viaSlack(r.Context())
	pr, err := h.cfg.Identity.ChatPrincipal(ctx, account)
	if errors.Is(err, identity.ErrChatNotLinked) {
		h.refusals.record(ctx, ReasonNotLinked, slackUser(account))
		h.reply(p.ResponseURL, h.notLinked())
		return
	}
	if err != nil {
		if airlock.ErrorKind(err) == airlock.Internal || airlock.ErrorKind(err) == "" {
			h.cfg.Log.Error("slack: find the linked user", "err", err)
		} else {
			d := slackUser(account)
			d["detail"] = airlock.ErrorMessage(err)
			h.refusals.record(ctx, "linked user refused", d)
		}
		h.reply(p.ResponseURL, "Not done: "+Escape(airlock.ErrorMessage(err))+".")
		return
	}
	runID, binding, ok := ParseActionValue(action.Value)
	if !ok {
		h.reply(p.ResponseURL, "Not done: this button does not name a run.")
		return
	}
	decision, comment := "approve", ""
	if action.ActionID == ActionDeny {
		decision, comment = "deny", "denied from Slack by "+pr.Username
	}
	link := Escape(h.runURL(runID))
	rn, err := h.cfg.Runs.Decide(ctx, pr, runID, decision, binding, comment)
	if err != nil {
		h.reply(p.ResponseURL, h.refusalText(err, link))
		return
	}
	var text string
	switch {
	case decision == "deny":
		text = fmt.Sprintf("You denied the run of %s in %s: %s", Escape(rn.ProcedureName), Escape(rn.Environment), link)
	case rn.Status == store.RunQueued:
		text = fmt.Sprintf("You approved the run of %s in %s; it is queued to run: %s", Escape(rn.ProcedureName), Escape(rn.Environment), link)
	default:
		text = fmt.Sprintf("You approved the run of %s in %s; it waits for more approvals: %s", Escape(rn.ProcedureName), Escape(rn.Environment), link)
	}
	h.reply(p.ResponseURL, text)
}

// replyAllowed reports whether u is where Slack takes replies: Slack's
// own hooks host over https, or the configured API server's scheme and
// host. Airlock never posts to any other address a payload names.
func (h *Handler) replyAllowed(u *url.URL) bool {
	if u.Scheme == "https" && strings.EqualFold(u.Host, "hooks.slack.com") {
		return true
	}
	if h.cfg.APIURL == "" {
		return false
	}
	api, err := url.Parse(h.cfg.APIURL)
	return err == nil && api.Host != "" && u.Scheme == api.Scheme && strings.EqualFold(u.Host, api.Host)
}

// refusalText says why Decide refused, as the API would, without
// internals.
func (h *Handler) refusalText(err error, link string) string {
	var e *airlock.Error
	switch {
	case errors.As(err, &e) && e.Field == "binding":
		return "Not done: the run changed since this message; look at it again: " + link
	case airlock.ErrorKind(err) == airlock.Forbidden:
		return "Not done: " + Escape(airlock.ErrorMessage(err)) + ". " + link
	case airlock.ErrorKind(err) == airlock.NotFound:
		return "Not done: no such run, or you may not see it."
	case airlock.ErrorKind(err) == airlock.Internal || airlock.ErrorKind(err) == "":
		h.cfg.Log.Error("slack: decide a run", "err", err)
		return "Not done: Airlock could not record the decision; try again on the run's page: " + link
	default:
		return "Not done: " + Escape(airlock.ErrorMessage(err)) + ". " + link
	}
}

// reply posts an ephemeral message to the interaction's response_url,
// in the background: Slack has been answered already.
func (h *Handler) reply(responseURL, text string) {
	u, err := url.Parse(responseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		h.cfg.Log.Warn("slack: no response_url to reply to")
		return
	}
	if !h.replyAllowed(u) {
		h.cfg.Log.Warn("slack: refusing to reply to a response_url that is not Slack's", "host", cap64(u.Host))
		return
	}
	b, _ := json.Marshal(ephemeral{ResponseType: "ephemeral", Text: text})
	h.replies.Add(1)
	go func() {
		defer h.replies.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, responseURL, bytes.NewReader(b))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := h.cfg.Client.Do(req)
		if err != nil {
			h.cfg.Log.Warn("slack: reply to response_url", "err", err)
			return
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			h.cfg.Log.Warn("slack: reply to response_url", "status", resp.StatusCode)
		}
	}()
}
