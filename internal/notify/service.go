package notify

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/store"
)

// Authorizer checks system actions (the authz package's).
type Authorizer interface {
	CheckSystem(ctx context.Context, p *identity.Principal, action string) error
}

// Service is what people do with notifications: their subscriptions,
// and for admins the deliveries, dead letters and test messages.
type Service struct {
	Store store.Store
	Authz Authorizer
	Now   func() time.Time
	// Dispatcher is nil when no channel is configured.
	Dispatcher *Dispatcher
}

// adminAction guards delivery administration: those who manage policy
// (the admins) see deliveries, retry dead letters and send tests.
const adminAction = "managePolicy"

// Channels names the configured channels, sorted.
func (s *Service) Channels() []string {
	if s.Dispatcher == nil {
		return nil
	}
	var out []string
	for n := range s.Dispatcher.Planner.Channels {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DeliveryView is a delivery as admins see it.
type DeliveryView struct {
	*store.Delivery
	Subject string
	Title   string
}

// Deliveries lists deliveries, newest first (status may be empty).
func (s *Service) Deliveries(ctx context.Context, p *identity.Principal, status string, limit int) ([]DeliveryView, error) {
	if err := s.Authz.CheckSystem(ctx, p, adminAction); err != nil {
		return nil, err
	}
	switch status {
	case "", store.DeliveryPending, store.DeliveryDelivered, store.DeliveryDead:
	default:
		return nil, airlock.FieldError("status", "expected pending, delivered or dead, got %q", status)
	}
	if limit <= 0 {
		limit = 100
	}
	ds, err := s.Store.DeliveryList(ctx, store.DeliveryListParams{Status: status, Limit: min(limit, 1000)})
	if err != nil {
		return nil, err
	}
	out := make([]DeliveryView, 0, len(ds))
	for _, d := range ds {
		var m Message
		_ = json.Unmarshal(d.Message, &m)
		out = append(out, DeliveryView{Delivery: d, Subject: m.Subject, Title: m.Title})
	}
	return out, nil
}

// Retry puts a dead letter back in the queue, audited.
func (s *Service) Retry(ctx context.Context, p *identity.Principal, id string) (*store.Delivery, error) {
	if err := s.Authz.CheckSystem(ctx, p, adminAction); err != nil {
		return nil, err
	}
	now := s.Now().UTC()
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		d, err := tx.DeliveryGet(ctx, id)
		if err != nil {
			return err
		}
		if d.Status != store.DeliveryDead {
			return airlock.Errorf(airlock.Conflict, "delivery %s is %s; only dead letters are retried", id, d.Status)
		}
		if err := tx.DeliveryRetry(ctx, id, now); err != nil {
			return err
		}
		// Not the last error: an endpoint's answer has no place in the
		// permanent log.
		return tx.AuditAppend(ctx, audit.New(ctx, now, "notify.retry", p.Actor(), id, audit.Success,
			map[string]any{"channel": d.Channel, "kind": d.Kind, "attempts": d.Attempts}))
	})
	if err != nil {
		return nil, err
	}
	if s.Dispatcher != nil {
		s.Dispatcher.Wake()
	}
	return s.Store.DeliveryGet(ctx, id)
}

// Test sends a test message through a channel: to a webhook or Teams
// channel as such, by email and Slack to the caller. Audited; the audit
// event is what queues it.
func (s *Service) Test(ctx context.Context, p *identity.Principal, channel string) (string, error) {
	if err := s.Authz.CheckSystem(ctx, p, adminAction); err != nil {
		return "", err
	}
	if !slices.Contains(s.Channels(), channel) {
		return "", airlock.FieldError("channel", "expected a configured channel (%v), got %q", s.Channels(), channel)
	}
	now := s.Now().UTC()
	e := audit.New(ctx, now, Test, p.Actor(), channel, audit.Success, map[string]any{"channel": channel})
	if err := s.Store.Update(ctx, func(tx store.Tx) error { return tx.AuditAppend(ctx, e) }); err != nil {
		return "", err
	}
	s.Dispatcher.Wake()
	return e.ID, nil
}

// Choice is one kind on one channel for a person.
type Choice struct {
	Kind    string `json:"kind"`
	Channel string `json:"channel"`
	Enabled bool   `json:"enabled"`
}

// personal are the channels that reach a person (as opposed to a team's
// places and webhooks).
var personal = []string{"email", "slack"}

// Subscriptions lists p's choices for every kind on every configured
// personal channel; what p never changed is on.
func (s *Service) Subscriptions(ctx context.Context, p *identity.Principal) ([]Choice, error) {
	subs, err := s.Store.SubscriptionList(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	off := map[[2]string]bool{}
	for _, x := range subs {
		off[[2]string{x.Kind, x.Channel}] = !x.Enabled
	}
	out, configured := []Choice{}, s.Channels()
	for _, k := range Kinds {
		for _, c := range personal {
			if slices.Contains(configured, c) {
				out = append(out, Choice{Kind: k, Channel: c, Enabled: !off[[2]string{k, c}]})
			}
		}
	}
	return out, nil
}

// SetSubscriptions records p's choices (refused whole when one names an
// unknown kind or channel).
func (s *Service) SetSubscriptions(ctx context.Context, p *identity.Principal, cs []Choice) error {
	now := s.Now().UTC()
	var subs []*store.Subscription
	for _, c := range cs {
		if !slices.Contains(Kinds, c.Kind) {
			return airlock.FieldError("kind", "expected one of %v, got %q", Kinds, c.Kind)
		}
		if !slices.Contains(personal, c.Channel) {
			return airlock.FieldError("channel", "expected email or slack, got %q", c.Channel)
		}
		subs = append(subs, &store.Subscription{UserID: p.UserID, Kind: c.Kind, Channel: c.Channel, Enabled: c.Enabled, UpdatedAt: now})
	}
	return s.Store.SubscriptionSet(ctx, subs)
}
