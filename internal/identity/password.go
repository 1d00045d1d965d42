package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"

	"github.com/airlockhq/airlock"
)

// Argon2id parameters: OWASP's recommended minimum (19 MiB, 2 passes,
// 1 lane). Memory is the main cost; 19 MiB keeps a login cheap enough for
// a small server while costing an attacker dearly per guess. Verification
// reads the parameters from the stored hash, so they can be raised later
// without invalidating existing passwords.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

// argonSlots bounds the argon2id work in flight: each takes argonMemory
// (19 MiB), so a burst of sign-ins, or a start that hashes many
// passwords, stays within a few tens of MiB. A sign-in waits for a slot
// behind at most argonQueueMax others; past that it is refused at once
// (ErrBusy, 503) rather than queued without end.
var (
	argonSlots   = make(chan struct{}, 2)
	argonWaiting atomic.Int64
)

const argonQueueMax = 32

// ErrBusy refuses a sign-in when too many are being checked at once.
var ErrBusy = &airlock.Error{Kind: airlock.Unavailable, Message: "too many sign-ins are being checked at once; try again in a moment"}

// argonSlot takes a slot (waiting for one; with bounded, refusing
// beyond the queue) and returns its release.
func argonSlot(bounded bool) (func(), error) {
	if bounded {
		if argonWaiting.Add(1) > argonQueueMax {
			argonWaiting.Add(-1)
			return nil, ErrBusy
		}
		defer argonWaiting.Add(-1)
	}
	argonSlots <- struct{}{}
	return func() {
		// The hash's 19 MiB are garbage now: give them back to the
		// system before the next hash takes the slot, so that RSS stays
		// at what the slots bound instead of growing until the next
		// collection (a full collection per hash: small beside argon2).
		debug.FreeOSMemory()
		<-argonSlots
	}, nil
}

// HashPassword returns the argon2id hash of pw in PHC string form.
func HashPassword(pw string) string {
	release, _ := argonSlot(false)
	defer release()
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// VerifyPassword reports whether pw matches the PHC-encoded hash, using
// the parameters stored in the hash. ErrBusy: too many are being checked
// at once.
func VerifyPassword(hash, pw string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("password hash: not argon2id")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errors.New("password hash: unsupported version")
	}
	var mem uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil {
		return false, fmt.Errorf("password hash: parameters: %w", err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("password hash: salt: %w", err)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return false, fmt.Errorf("password hash: key: %w", err)
	}
	release, err := argonSlot(true)
	if err != nil {
		return false, err
	}
	defer release()
	got := argon2.IDKey([]byte(pw), salt, t, mem, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// RandomPassword returns a one-time password: 26 base32 characters,
// 128 bits from crypto/rand.
func RandomPassword() string { return rand.Text() }

// MinPasswordLength is the shortest password a user may set.
const MinPasswordLength = 12
