package trigger

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Authentication schemes.
const (
	// AuthHMAC: the Standard Webhooks scheme (standardwebhooks.com):
	// headers webhook-id, webhook-timestamp (Unix seconds) and
	// webhook-signature ("v1," and the base64 HMAC-SHA256 of
	// "id.timestamp.body" under the secret's bytes).
	AuthHMAC = "hmac"
	// AuthBearer: "Authorization: Bearer <secret>", for senders that
	// cannot sign (Alertmanager).
	AuthBearer = "bearer"
)

// Tolerance is how far a signed delivery's timestamp may be from now,
// either way: an older one is a replay, or too late to act on.
const Tolerance = 5 * time.Minute

// Header bounds: anything longer is refused before any work.
const (
	maxIDLen        = 256
	maxSignatureLen = 4096
)

// Delivery is one inbound webhook request, as the HTTP layer read it.
type Delivery struct {
	// ID, Timestamp and Signature are the Standard Webhooks headers.
	ID, Timestamp, Signature string
	// Authorization is the Authorization header.
	Authorization string
	Body          []byte
}

// NewSecret returns a fresh secret in the Standard Webhooks form:
// "whsec_" and 32 random bytes, base64. It serves as a bearer secret
// as it is.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}

// secretKey returns the HMAC key of a "whsec_" secret.
func secretKey(secret string) ([]byte, error) {
	if !strings.HasPrefix(secret, "whsec_") {
		return nil, fmt.Errorf("not a whsec_ secret")
	}
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
}

// Sign returns the webhook-signature value of a delivery (for senders
// and tests).
func Sign(secret, id string, ts int64, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, strconv.FormatInt(ts, 10), body)), nil
}

func mac(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// AuthError says why a delivery's authentication failed; Reason is a
// short stable code for the audit log and metrics.
type AuthError struct {
	Reason  string
	Message string
}

func (e *AuthError) Error() string { return e.Message }

func authErr(reason, format string, args ...any) *AuthError {
	return &AuthError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// VerifyHMAC checks a delivery signed in the Standard Webhooks scheme
// under secret at now: every header present and bounded, the timestamp
// within Tolerance, and one of the signatures (several may be sent
// while a sender rotates secrets) the HMAC of id, timestamp and body.
// Signatures are compared in constant time.
func VerifyHMAC(secret string, d Delivery, now time.Time) error {
	switch {
	case d.ID == "" || d.Timestamp == "" || d.Signature == "":
		return authErr("missing_headers", "a signed delivery needs the webhook-id, webhook-timestamp and webhook-signature headers")
	case len(d.ID) > maxIDLen || len(d.Signature) > maxSignatureLen || len(d.Timestamp) > 20:
		return authErr("bad_headers", "webhook headers too long")
	}
	ts, err := strconv.ParseInt(d.Timestamp, 10, 64)
	if err != nil {
		return authErr("bad_timestamp", "webhook-timestamp is not Unix seconds")
	}
	at := time.Unix(ts, 0)
	if at.Before(now.Add(-Tolerance)) || at.After(now.Add(Tolerance)) {
		return authErr("stale_timestamp", "webhook-timestamp is more than %s from the server's time", Tolerance)
	}
	key, err := secretKey(secret)
	if err != nil {
		return err
	}
	want := mac(key, d.ID, d.Timestamp, d.Body)
	ok := false
	for _, s := range strings.Fields(d.Signature) {
		v, sig, found := strings.Cut(s, ",")
		if !found || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return authErr("bad_signature", "no webhook-signature matches")
	}
	return nil
}

// VerifyBearer checks "Authorization: Bearer <secret>" in constant time
// (over digests, so the length does not leak either).
func VerifyBearer(secret string, d Delivery) error {
	tok, ok := strings.CutPrefix(d.Authorization, "Bearer ")
	if !ok || tok == "" {
		return authErr("missing_bearer", "expected Authorization: Bearer and the trigger's secret")
	}
	a, b := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return authErr("bad_bearer", "the bearer secret does not match")
	}
	return nil
}
