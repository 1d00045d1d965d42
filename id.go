package airlock

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

// ID prefixes. IDs are opaque, prefixed and sortable by creation time, so
// they never invite guessing and list in a stable order.
const (
	PrefixUser        = "usr"
	PrefixGroup       = "grp"
	PrefixToken       = "tok"
	PrefixSession     = "ses"
	PrefixEvent       = "evt"
	PrefixRequest     = "req"
	PrefixProc        = "prc"
	PrefixVersion     = "pv"
	PrefixReview      = "rev"
	PrefixPolicy      = "pol"
	PrefixRun         = "run"
	PrefixRunApproval = "rap"
	PrefixUserChange  = "uch"
	PrefixSchedule    = "sch"
	PrefixTrigger     = "trg"
	// PrefixStandingApproval: a decision on a schedule or trigger.
	PrefixStandingApproval = "sap"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns prefix_ followed by 48 bits of millisecond time and 80
// random bits, base32 (Crockford alphabet, lower case) so that IDs sort by
// creation time.
func NewID(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// HasPrefix reports whether id carries the given prefix.
func HasPrefix(id, prefix string) bool {
	return strings.HasPrefix(id, prefix+"_")
}
