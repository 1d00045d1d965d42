package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/notify"
)

// DeliveryJSON is one message of a notification to one place.
type DeliveryJSON struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Subject     string    `json:"subject"`
	Title       string    `json:"title"`
	Channel     string    `json:"channel"`
	Target      string    `json:"target"`
	Status      string    `json:"status"`
	Attempts    int       `json:"attempts"`
	NextAt      time.Time `json:"next_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
}

func deliveryJSON(d notify.DeliveryView) DeliveryJSON {
	return DeliveryJSON{ID: d.ID, Kind: d.Kind, Subject: d.Subject, Title: d.Title, Channel: d.Channel, Target: d.Target,
		Status: d.Status, Attempts: d.Attempts, NextAt: d.NextAt, LastError: d.LastError, CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt}
}

func (h *Handler) listDeliveries(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	ds, err := h.Notify.Deliveries(r.Context(), identity.PrincipalFrom(r.Context()), r.URL.Query().Get("status"), limit)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	out := ListResponse[DeliveryJSON]{Items: []DeliveryJSON{}}
	for _, d := range ds {
		out.Items = append(out.Items, deliveryJSON(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) retryDelivery(w http.ResponseWriter, r *http.Request) {
	d, err := h.Notify.Retry(r.Context(), identity.PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, deliveryJSON(notify.DeliveryView{Delivery: d}))
}

// NotifyTestRequest names the channel to send a test message through.
type NotifyTestRequest struct {
	Channel string `json:"channel"`
}

// NotifyTestResponse identifies the test message's audit event.
type NotifyTestResponse struct {
	Event string `json:"event"`
}

func (h *Handler) notifyTest(w http.ResponseWriter, r *http.Request) {
	var req NotifyTestRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	id, err := h.Notify.Test(r.Context(), identity.PrincipalFrom(r.Context()), req.Channel)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusAccepted, NotifyTestResponse{Event: id})
}

// SubscriptionsJSON is a person's choices: every kind on every channel
// that can reach them; what they never changed is on.
type SubscriptionsJSON struct {
	Channels      []string        `json:"channels"`
	Subscriptions []notify.Choice `json:"subscriptions"`
}

func (h *Handler) mySubscriptions(w http.ResponseWriter, r *http.Request) {
	cs, err := h.Notify.Subscriptions(r.Context(), identity.PrincipalFrom(r.Context()))
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, SubscriptionsJSON{Channels: h.Notify.Channels(), Subscriptions: cs})
}

// SubscriptionsRequest changes some of one's choices.
type SubscriptionsRequest struct {
	Subscriptions []notify.Choice `json:"subscriptions"`
}

func (h *Handler) setMySubscriptions(w http.ResponseWriter, r *http.Request) {
	var req SubscriptionsRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	if err := h.Notify.SetSubscriptions(r.Context(), identity.PrincipalFrom(r.Context()), req.Subscriptions); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	h.mySubscriptions(w, r)
}
