package run

import (
	"context"
	"slices"
	"sync"
	"testing"
)

// fakeNotifier records what is published; Listen is the test's to call.
type fakeNotifier struct {
	mu        sync.Mutex
	published []string // "topic:key"
}

func (f *fakeNotifier) Publish(topic string, keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		f.published = append(f.published, topic+":"+k)
	}
}

func (f *fakeNotifier) Listen(ctx context.Context, _ map[string]func(string)) error {
	<-ctx.Done()
	return nil
}

func (f *fakeNotifier) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.published
	f.published = nil
	return p
}

func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestNoticesCrossReplicasOnce: a change here wakes this replica's
// viewers and is published; a notice from another replica wakes the
// viewers it names (all of them for "") and is never published again;
// a queued notice wakes the dispatcher.
func TestNoticesCrossReplicasOnce(t *testing.T) {
	s := &Service{wake: make(chan struct{}, 1), broker: newBroker()}
	n := &fakeNotifier{}
	handlers := s.Notices(n)
	a, stopA := s.Subscribe("run_a")
	defer stopA()
	b, stopB := s.Subscribe("run_b")
	defer stopB()

	s.broker.notify("run_a")
	if wa, wb := signalled(a), signalled(b); !wa || wb {
		t.Errorf("a local change of run_a: its viewer woken %v (want true), run_b's %v (want false)", wa, wb)
	}
	if got := n.take(); !slices.Equal(got, []string{"run:run_a"}) {
		t.Errorf("a local change published %q, want run:run_a", got)
	}

	handlers[NoticeRun]("run_b")
	if !signalled(b) || signalled(a) {
		t.Error("another replica's notice of run_b did not wake run_b's viewer alone")
	}
	handlers[NoticeRun]("")
	if !signalled(a) || !signalled(b) {
		t.Error("a wake-all (key \"\") did not wake every viewer")
	}
	if got := n.take(); len(got) != 0 {
		t.Errorf("other replicas' notices were published again: %q", got)
	}

	handlers[NoticeQueued]("")
	if !signalled(s.wake) {
		t.Error("a queued notice did not wake the dispatcher")
	}
	if got := n.take(); len(got) != 0 {
		t.Errorf("a queued notice was published again: %q", got)
	}
	s.WakeReplicas()
	if !signalled(s.wake) {
		t.Error("WakeReplicas did not wake this replica's dispatcher")
	}
	if got := n.take(); !slices.Equal(got, []string{"queued:"}) {
		t.Errorf("WakeReplicas published %q, want queued:", got)
	}
}

// TestBrokerAloneWakesLocally: without a notifier (SQLite, one process)
// a change wakes this replica's viewers and nothing else happens.
func TestBrokerAloneWakesLocally(t *testing.T) {
	s := &Service{wake: make(chan struct{}, 1), broker: newBroker()}
	a, stop := s.Subscribe("run_a")
	defer stop()
	s.broker.notify("run_a")
	if !signalled(a) {
		t.Error("a local change did not wake its viewer")
	}
	s.WakeReplicas()
	if !signalled(s.wake) {
		t.Error("WakeReplicas did not wake the dispatcher")
	}
}
