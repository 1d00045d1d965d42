package run

import "github.com/airlockhq/airlock/internal/store"

// Topics of the notices runs exchange between replicas that share a
// database (store.Notifier). A notice only makes a replica look sooner:
// viewers also read the store every second, and so does the dispatcher,
// which bounds what a lost notice costs.
const (
	// NoticeRun: a run's output or status changed; the key is its ID.
	NoticeRun = "run"
	// NoticeQueued: a run was queued; a replica with a free worker may
	// claim it.
	NoticeQueued = "queued"
)

// Notices makes s tell the other replicas sharing n about its runs, and
// returns its handlers of their notices, by topic, for n.Listen. Call it
// before Start.
func (s *Service) Notices(n store.Notifier) map[string]func(key string) {
	s.broker.mu.Lock()
	s.broker.remote = n
	s.broker.mu.Unlock()
	return map[string]func(string){
		NoticeRun:    s.Remote,
		NoticeQueued: func(string) { s.Wake() },
	}
}

// Remote wakes this replica's viewers of a run another replica changed,
// or of every run when runID is "" (notices may have been missed). It
// tells no other replica.
func (s *Service) Remote(runID string) { s.broker.wake(runID) }

// WakeReplicas makes the dispatcher here, and on every other replica,
// look for queued runs now: for a run that became queued, which any
// replica may claim.
func (s *Service) WakeReplicas() {
	s.Wake()
	s.broker.mu.Lock()
	remote := s.broker.remote
	s.broker.mu.Unlock()
	if remote != nil {
		remote.Publish(NoticeQueued, "")
	}
}
