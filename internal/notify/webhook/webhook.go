// Package webhook sends notifications to HTTP endpoints, signed per the
// Standard Webhooks scheme (https://www.standardwebhooks.com): headers
// webhook-id (the delivery's ID, the same on every attempt, so that a
// receiver can drop a repeat), webhook-timestamp (Unix seconds) and
// webhook-signature ("v1," and the base64 HMAC-SHA256 of
// "id.timestamp.body" under the endpoint's secret).
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock/internal/notify"
)

// Payload is the JSON body of every webhook: the kind of notification,
// when it happened, and its data (docs/notifications.md lists the fields
// of each kind).
type Payload struct {
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

// Channel posts to one endpoint.
type Channel struct {
	name   string
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

// ParseSecret reads a Standard Webhooks secret: "whsec_" and base64.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	if err != nil || !strings.HasPrefix(s, "whsec_") || len(b) < 24 {
		return nil, fmt.Errorf("expected a secret such as whsec_ and at least 24 base64-encoded random bytes")
	}
	return b, nil
}

// New returns the channel "webhook:NAME" posting to url. client may be
// nil for one with a 30-second timeout; now may be nil for time.Now.
func New(name, url string, secret []byte, client *http.Client, now func() time.Time) *Channel {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	return &Channel{name: "webhook:" + name, url: url, secret: secret, client: client, now: now}
}

// Name implements notify.Channel.
func (c *Channel) Name() string { return c.name }

// Sign returns the webhook-signature value for a message.
func Sign(secret []byte, id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%s.%d.", id, ts)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Send implements notify.Channel: a 2xx answer delivers; 408, 429 and 5xx
// are tried again later; any other answer cannot be cured by retrying.
func (c *Channel) Send(ctx context.Context, m *notify.Message) error {
	data := map[string]any{"title": m.Title}
	for k, v := range m.Data {
		data[k] = v
	}
	if m.Text != "" {
		data["text"] = m.Text
	}
	body, err := json.Marshal(Payload{Type: m.Kind, Timestamp: m.Time.UTC(), Data: data})
	if err != nil {
		return notify.Permanent(err)
	}
	ts := c.now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return notify.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Airlock")
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(c.secret, m.ID, ts, body))
	resp, err := c.client.Do(req)
	if err != nil {
		// Not the URL: it may carry a credential in its query, and the
		// error is kept and shown.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s: %w", c.name, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("%s answered %s: %s", c.name, resp.Status, bytes.TrimSpace(snippet))
	default:
		return notify.Permanent(fmt.Errorf("%s answered %s: %s", c.name, resp.Status, bytes.TrimSpace(snippet)))
	}
}
