package identity

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// AuthCacheTTL bounds how long an API token's principal (its user, groups
// and scope) is reused without reading the store again. On the replica
// where a token is revoked, a user disabled, a password changed or a
// group membership changed, every cached principal is dropped at once;
// on other replicas the change takes effect within this bound.
const AuthCacheTTL = 2 * time.Second

// authCache remembers authenticated API tokens for AuthCacheTTL.
type authCache struct {
	mu      sync.Mutex
	entries map[string]authEntry
	gen     atomic.Uint64
}

type authEntry struct {
	p       Principal
	expires time.Time // the token's own expiry (zero: never)
	until   time.Time // monotonic: the entry's end
	gen     uint64
}

const authCacheMax = 10000

func (c *authCache) get(key string, now time.Time) (*Principal, bool) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if !ok || e.gen != c.gen.Load() || !time.Now().Before(e.until) || (!e.expires.IsZero() && now.After(e.expires)) {
		return nil, false
	}
	p := e.p
	return &p, true
}

func (c *authCache) put(key string, p *Principal, expires time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= authCacheMax {
		c.entries = map[string]authEntry{}
	}
	c.entries[key] = authEntry{p: *p, expires: expires, until: time.Now().Add(AuthCacheTTL), gen: gen}
}

// drop forgets every cached principal.
func (c *authCache) drop() { c.gen.Add(1) }

// update is store.Update for the identity service: any change it makes
// (a revoked token, a disabled user, a password, a membership) drops the
// cached principals first and again after it commits, so that none
// outlives it on this replica.
func (s *Service) update(ctx context.Context, fn func(tx store.Tx) error) error {
	s.auth.drop()
	err := s.store.Update(ctx, fn)
	s.auth.drop()
	return err
}
