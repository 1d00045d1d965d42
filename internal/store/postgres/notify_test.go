package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock/internal/store/postgres"
	"github.com/airlockhq/airlock/internal/testenv"
)

// heard records the notices a listener passes on, by topic.
type heard struct {
	mu     sync.Mutex
	got    map[string][]string
	topics []string
}

func newHeard(topics ...string) *heard { return &heard{got: map[string][]string{}, topics: topics} }

func (h *heard) handlers() map[string]func(string) {
	m := map[string]func(string){}
	for _, topic := range h.topics {
		m[topic] = func(key string) {
			h.mu.Lock()
			h.got[topic] = append(h.got[topic], key)
			h.mu.Unlock()
		}
	}
	return m
}

// count is how often key was heard under topic.
func (h *heard) count(topic, key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, k := range h.got[topic] {
		if k == key {
			n++
		}
	}
	return n
}

func (h *heard) keys(topic string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got[topic])
}

// replica opens a store on url, closed at cleanup.
func replica(t *testing.T, url string) *postgres.DB {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// listen makes s listen until cleanup, and waits until it does: the
// first call of a handler with "" says it is connected.
func listen(t *testing.T, s *postgres.DB, h *heard) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx, h.handlers()) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("listen: %v", err)
		}
	})
	testenv.Eventually(t, "the listener to connect (its first wake-all)", func() bool { return h.count(h.topics[0], "") > 0 })
}

// TestNotifyReachesOtherReplicas: what one replica publishes reaches the
// listeners of the others on its schema, not its own listener and not
// those of another schema (another cluster).
func TestNotifyReachesOtherReplicas(t *testing.T) {
	url, otherURL := testenv.PostgresSchema(t), testenv.PostgresSchema(t)
	a, b, c := replica(t, url), replica(t, url), replica(t, url)
	d, e := replica(t, otherURL), replica(t, otherURL)
	hb, hc, he := newHeard("run", "queued"), newHeard("run", "queued"), newHeard("run")
	listen(t, b, hb)
	listen(t, c, hc)
	listen(t, e, he)

	a.Publish("run", "run_1", "run_2")
	a.Publish("queued", "")
	testenv.Eventually(t, "replica B to hear run_1, run_2 and a queued run from A", func() bool {
		return hb.count("run", "run_1") == 1 && hb.count("run", "run_2") == 1 && hb.count("queued", "") == 2
	})

	// B's own notice reaches C but not B. Notices reach every listener
	// in commit order, whatever their channel: once C heard B's, and then
	// B heard A's later one, B would have heard its own by then.
	b.Publish("run", "run_from_b")
	testenv.Eventually(t, "replica C to hear run_from_b from B", func() bool { return hc.count("run", "run_from_b") == 1 })
	// Another schema's notice, committed before A's next one.
	d.Publish("run", "run_other_cluster")
	testenv.Eventually(t, "replica E (the other schema) to hear run_other_cluster", func() bool { return he.count("run", "run_other_cluster") == 1 })
	a.Publish("run", "run_3")
	testenv.Eventually(t, "replica B to hear run_3 from A", func() bool { return hb.count("run", "run_3") == 1 })
	if n := hb.count("run", "run_from_b"); n != 0 {
		t.Errorf("replica B heard its own notice %d times", n)
	}
	if n := hb.count("run", "run_other_cluster"); n != 0 {
		t.Errorf("replica B heard another schema's notice %d times", n)
	}
	if n := he.count("run", "run_3"); n != 0 {
		t.Errorf("the other schema heard this one's notice %d times", n)
	}
}

// TestNotifyManyKeysArriveWhole: a burst larger than one payload reaches
// the other replica whole (several payloads), or as "any key" once the
// pending keys overflow — never partly and silently.
func TestNotifyManyKeysArriveWhole(t *testing.T) {
	url := testenv.PostgresSchema(t)
	a, b := replica(t, url), replica(t, url)
	hb := newHeard("run")
	listen(t, b, hb)
	connects := hb.count("run", "")
	var keys []string
	for i := range 600 { // 600 × ~30 bytes: more than one payload
		keys = append(keys, fmt.Sprintf("run_%026d", i))
	}
	a.Publish("run", keys...)
	a.Publish("run", "run_last")
	testenv.Eventually(t, "replica B to hear all 601 keys, or any key", func() bool {
		if hb.count("run", "") > connects {
			return true
		}
		return hb.count("run", "run_last") == 1 && len(hb.keys("run")) == connects+len(keys)+1
	})
	if hb.count("run", "") == connects {
		got := hb.keys("run")
		for _, k := range keys {
			if !slices.Contains(got, k) {
				t.Fatalf("replica B did not hear %s", k)
			}
		}
	}
}

// TestListenerReconnects: the listening connection is killed; the
// listener connects again, tells its handlers that anything may have
// changed (key ""), and hears what is published afterwards.
func TestListenerReconnects(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresSchema(t)
	a, b := replica(t, url), replica(t, url)
	hb := newHeard("run", "queued")
	listen(t, b, hb)
	if n := hb.count("queued", ""); n != 1 {
		t.Fatalf("the first connect told the queued handler %d times, want 1", n)
	}
	pid := postgres.ListenerPID(b)
	killer, err := pgx.Connect(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(ctx)
	var killed bool
	if err := killer.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int64(pid)).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the listening backend %d: %v (terminated: %v)", pid, err, killed)
	}
	testenv.Eventually(t, "the listener to connect again and wake everything (key \"\" on each topic)", func() bool {
		return hb.count("run", "") == 2 && hb.count("queued", "") == 2
	})
	if p := postgres.ListenerPID(b); p == pid {
		t.Errorf("the listener still names the killed backend %d", pid)
	}
	a.Publish("run", "run_after")
	testenv.Eventually(t, "replica B to hear run_after on its new connection", func() bool { return hb.count("run", "run_after") == 1 })
}

// TestPublishAfterCloseReturns: publishing never waits for the database,
// even once the store is closed (a shutting-down replica's last runs).
func TestPublishAfterCloseReturns(t *testing.T) {
	s, err := postgres.Open(context.Background(), testenv.PostgresSchema(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Publish("run", "run_1") // returns: nothing sends it any more
}
