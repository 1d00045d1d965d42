package api

import (
	"net/http"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
)

// ChatLinkJSON is a chat account linked to one's Airlock account.
type ChatLinkJSON struct {
	Provider   string    `json:"provider"`
	TeamID     string    `json:"team_id"`
	ExternalID string    `json:"external_id"`
	CreatedAt  time.Time `json:"created_at"`
}

func chatLinkJSON(l *store.ChatLink) ChatLinkJSON {
	return ChatLinkJSON{Provider: l.Provider, TeamID: l.TeamID, ExternalID: l.ExternalID, CreatedAt: l.CreatedAt}
}

// ChatLinkCodeResponse is a one-time link code and what to type in chat.
type ChatLinkCodeResponse struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
	Command   string    `json:"command"`
}

func (h *Handler) listChatLinks(w http.ResponseWriter, r *http.Request) {
	ls, err := h.Identity.ChatLinks(r.Context(), identity.PrincipalFrom(r.Context()))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[ChatLinkJSON]{Items: []ChatLinkJSON{}}
	for _, l := range ls {
		out.Items = append(out.Items, chatLinkJSON(l))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) chatLinkCode(w http.ResponseWriter, r *http.Request) {
	c, err := h.Identity.IssueChatLinkCode(r.Context(), identity.PrincipalFrom(r.Context()))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, ChatLinkCodeResponse{Code: c.Code, ExpiresAt: c.ExpiresAt, Command: "/airlock link " + c.Code})
}

func (h *Handler) unlinkChat(w http.ResponseWriter, r *http.Request) {
	err := h.Identity.UnlinkChat(r.Context(), identity.PrincipalFrom(r.Context()),
		identity.ChatAccount{Provider: r.PathValue("provider"), TeamID: r.PathValue("team"), ExternalID: r.PathValue("id")})
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// chatEndpoint serves a chat app's callback when that app is configured.
func chatEndpoint(pick func(h *Handler) http.Handler) func(h *Handler, w http.ResponseWriter, r *http.Request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request) {
		next := pick(h)
		if next == nil {
			writeError(w, r, h.Log, airlock.Errorf(airlock.NotFound, "this chat app is not configured"))
			return
		}
		next.ServeHTTP(w, r)
	}
}
