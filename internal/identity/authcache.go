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
// other replicas sharing a PostgreSQL database drop theirs when its
// notice arrives (NoticePrincipals), and take the change within this
// bound when it is lost.
const AuthCacheTTL = 2 * time.Second

// NoticePrincipals is the topic of the notice that an identity write
// committed: the other replicas drop their cached principals.
const NoticePrincipals = "principals"

// authCache remembers authenticated API tokens for AuthCacheTTL.
type authCache struct {
	mu      sync.Mutex
	entries map[string]authEntry
	gen     atomic.Uint64
	// remote, when set, tells the other replicas to drop theirs.
	remote store.Notifier
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

// dropEverywhere drops the principals cached here and tells the other
// replicas to drop theirs.
func (c *authCache) dropEverywhere() {
	c.drop()
	c.mu.Lock()
	remote := c.remote
	c.mu.Unlock()
	if remote != nil {
		remote.Publish(NoticePrincipals, "")
	}
}

// Notices makes s tell the other replicas sharing n when an identity
// write commits, and returns its handler of their notices (drop every
// cached principal), by topic, for n.Listen. A principal read on another
// replica before the write committed was read under the generation the
// drop ends, so it is not cached (see get and put).
func (s *Service) Notices(n store.Notifier) map[string]func(key string) {
	s.auth.mu.Lock()
	s.auth.remote = n
	s.auth.mu.Unlock()
	return map[string]func(string){NoticePrincipals: func(string) { s.auth.drop() }}
}

// update is store.Update for the identity service: any change it makes
// (a revoked token, a disabled user, a password, a membership) drops the
// cached principals first and again after it commits, so that none
// outlives it on this replica, and then on the others.
func (s *Service) update(ctx context.Context, fn func(tx store.Tx) error) error {
	s.auth.drop()
	err := s.store.Update(ctx, fn)
	s.auth.dropEverywhere()
	return err
}
