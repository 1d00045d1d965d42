// Package secret owns secrets at rest and in output: envelope encryption
// under a master key (AES-256-GCM; each value under its own data key,
// itself sealed by the master key) and streaming redaction of secret
// values from output by literal match, including matches split across
// writes. It also owns the rule of who may use a secret: a Scope names
// the teams and procedures whose steps may name it.
//
// It is pure: it must not import net/http, database/sql or os/exec.
// Values are never logged, never returned by any API, and resolved only
// in the executor.
package secret

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the master key length: 32 bytes for AES-256.
const KeySize = 32

// Keyring seals and opens secret values under a master key.
type Keyring struct {
	master cipher.AEAD
	id     string // short fingerprint of the key, stored with each value
}

// NewKeyring returns a keyring for a 32-byte master key.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("master key: expected %d bytes, got %d", KeySize, len(key))
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	// A fixed encryption under the key identifies it without revealing it.
	fp := aead.Seal(nil, make([]byte, aead.NonceSize()), []byte("airlock-key-id"), nil)
	return &Keyring{master: aead, id: base64.RawURLEncoding.EncodeToString(fp[:6])}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// ParseKey decodes a master key written as base64 (standard or URL,
// padded or not) or as 64 hex digits.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == KeySize {
		return b, nil
	}
	return nil, errors.New("expected 32 bytes as base64 or 64 hex digits")
}

// LoadOrCreateKeyFile reads the master key at path, creating it (mode
// 0600, 32 random bytes as base64) when it does not exist.
func LoadOrCreateKeyFile(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		return nil, false, err
	}
	return k, true, f.Sync()
}

// KeyID identifies the master key (not secret).
func (k *Keyring) KeyID() string { return k.id }

// Seal encrypts value for storage: a fresh data key encrypts the value,
// and the master key encrypts the data key. additional binds the
// ciphertext to its context (the secret's name), so a row moved to another
// name fails to open.
func (k *Keyring) Seal(value, additional []byte) ([]byte, error) {
	dek := make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	inner, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	n1 := make([]byte, k.master.NonceSize())
	n2 := make([]byte, inner.NonceSize())
	if _, err := rand.Read(n1); err != nil {
		return nil, err
	}
	if _, err := rand.Read(n2); err != nil {
		return nil, err
	}
	sealedKey := k.master.Seal(nil, n1, dek, additional)
	sealedValue := inner.Seal(nil, n2, value, additional)
	// version 1 | nonce1 | len(sealedKey) | sealedKey | nonce2 | sealedValue
	var b bytes.Buffer
	b.WriteByte(1)
	b.Write(n1)
	b.WriteByte(byte(len(sealedKey)))
	b.Write(sealedKey)
	b.Write(n2)
	b.Write(sealedValue)
	return b.Bytes(), nil
}

// ErrOpen is returned for a ciphertext that does not open: a wrong key,
// tampering, or a value moved to another name.
var ErrOpen = errors.New("secret: cannot decrypt (wrong master key, or the stored value was altered)")

// Open decrypts what Seal produced with the same additional data.
func (k *Keyring) Open(sealed, additional []byte) ([]byte, error) {
	ns := k.master.NonceSize()
	if len(sealed) < 2+ns || sealed[0] != 1 {
		return nil, ErrOpen
	}
	n1 := sealed[1 : 1+ns]
	kl := int(sealed[1+ns])
	rest := sealed[2+ns:]
	if len(rest) < kl+ns {
		return nil, ErrOpen
	}
	dek, err := k.master.Open(nil, n1, rest[:kl], additional)
	if err != nil {
		return nil, ErrOpen
	}
	inner, err := newGCM(dek)
	if err != nil {
		return nil, ErrOpen
	}
	rest = rest[kl:]
	value, err := inner.Open(nil, rest[:inner.NonceSize()], rest[inner.NonceSize():], additional)
	if err != nil {
		return nil, ErrOpen
	}
	return value, nil
}
