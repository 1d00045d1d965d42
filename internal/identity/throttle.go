package identity

import (
	"sync"
	"time"
)

// ThrottleConfig bounds failed logins.
type ThrottleConfig struct {
	// MaxAccountFailures failed logins for one username within Window
	// throttle further attempts on that username.
	MaxAccountFailures int
	// MaxAddressFailures failed logins from one source address within
	// Window throttle further attempts from that address.
	MaxAddressFailures int
	Window             time.Duration
}

// DefaultThrottleConfig returns the documented defaults.
func DefaultThrottleConfig() ThrottleConfig {
	return ThrottleConfig{MaxAccountFailures: 5, MaxAddressFailures: 20, Window: 15 * time.Minute}
}

// throttle counts failed logins in memory, per account and per source
// address, over a sliding window. Each replica counts on its own (see
// docs/design-notes.md).
type throttle struct {
	cfg  ThrottleConfig
	mu   sync.Mutex
	acct map[string][]time.Time
	addr map[string][]time.Time
}

func newThrottle(cfg ThrottleConfig) *throttle {
	return &throttle{cfg: cfg, acct: map[string][]time.Time{}, addr: map[string][]time.Time{}}
}

func prune(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= window {
		i++
	}
	return ts[i:]
}

// allow reports whether a login attempt may proceed.
func (t *throttle) allow(now time.Time, account, addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := prune(t.acct[account], now, t.cfg.Window)
	t.store(t.acct, account, a)
	if t.cfg.MaxAccountFailures > 0 && len(a) >= t.cfg.MaxAccountFailures {
		return false
	}
	if addr == "" {
		return true
	}
	b := prune(t.addr[addr], now, t.cfg.Window)
	t.store(t.addr, addr, b)
	return t.cfg.MaxAddressFailures <= 0 || len(b) < t.cfg.MaxAddressFailures
}

func (t *throttle) store(m map[string][]time.Time, k string, v []time.Time) {
	if len(v) == 0 {
		delete(m, k)
		return
	}
	m[k] = v
}

func (t *throttle) fail(now time.Time, account, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.acct[account] = append(t.acct[account], now)
	if addr != "" {
		t.addr[addr] = append(t.addr[addr], now)
	}
}

// succeed clears an account's failures; the address keeps its count so
// that one good password does not reset a spray across accounts.
func (t *throttle) succeed(account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.acct, account)
}
