package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
	"github.com/airlockhq/airlock/internal/store/sqlstore"
	"github.com/airlockhq/airlock/internal/testenv"
	"golang.org/x/mod/sumdb/note"
)

// queueWrites holds the writer in a transaction while n others queue
// behind it, then lets them all go as one group: fn(i) is the i-th
// queued transaction, and each one's outcome is returned.
func queueWrites(t *testing.T, s *sqlstore.DB, n int, fn func(i int, tx store.Tx) error, recovered ...func(i int, p any)) []error {
	t.Helper()
	ctx := context.Background()
	hold, held := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Update(ctx, func(tx store.Tx) error {
			close(held)
			<-hold
			return nil
		})
	}()
	<-held
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil && len(recovered) > 0 {
					recovered[0](i, p)
				} else if p != nil {
					panic(p)
				}
			}()
			errs[i] = s.Update(ctx, func(tx store.Tx) error { return fn(i, tx) })
		}()
	}
	testenv.Eventually(t, fmt.Sprintf("%d write transactions queued behind the held one", n), func() bool { return s.WritesQueued() == n })
	close(hold)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("the held transaction: %v", err)
	}
	return errs
}

// verifies fails the test unless the audit log verifies.
func verifies(t *testing.T, s *sqlstore.DB) {
	t.Helper()
	_, vkey, _ := audit.GenerateKey("group")
	v, _ := note.NewVerifier(vkey)
	if rep, err := audit.Verify(context.Background(), s, v, nil); err != nil || !rep.OK() {
		t.Fatalf("the audit log after a group commit does not verify: %v %+v", err, rep)
	}
}

// openStore opens a fresh database, closed when the test ends.
func openStore(t *testing.T) *sqlstore.DB {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// createUser stores user i (userNN) and its event in tx.
func createUser(ctx context.Context, tx store.Tx, at time.Time, i int, displayName string) (*store.User, error) {
	u := &store.User{ID: airlock.NewID(airlock.PrefixUser, at), Username: fmt.Sprintf("user%02d", i), DisplayName: displayName,
		PasswordHash: "$argon2id$x", CreatedAt: at, UpdatedAt: at}
	if err := tx.UserInsert(ctx, u); err != nil {
		return nil, err
	}
	return u, tx.AuditAppend(ctx, event(at, "user.create", u.ID))
}

func event(at time.Time, typ, subject string) *store.AuditEvent {
	return &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, at), Time: at, Type: typ, Subject: subject, ActorName: "test", Outcome: "success"}
}

// TestGroupCommitKeepsEachTransactionItsOwn: transactions committed
// together are each all or nothing — one that fails after writing
// leaves nothing, the others are stored — and the audit log they append
// to in one database transaction verifies.
func TestGroupCommitKeepsEachTransactionItsOwn(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	refused := errors.New("refused after writing")
	const n = 40
	errs := queueWrites(t, s, n, func(i int, tx store.Tx) error {
		u, err := createUser(ctx, tx, at, i, "")
		if err != nil {
			return err
		}
		switch i % 4 {
		case 1:
			return refused
		case 2:
			return tx.UserInsert(ctx, u) // a statement error: the same user again
		}
		return nil
	})
	for i, err := range errs {
		_, gerr := s.UserGetByUsername(ctx, fmt.Sprintf("user%02d", i))
		switch i % 4 {
		case 1, 2:
			if err == nil || airlock.ErrorKind(gerr) != airlock.NotFound {
				t.Errorf("transaction %d failed (%v) but left its user (%v)", i, err, gerr)
			}
			if i%4 == 1 && !errors.Is(err, refused) {
				t.Errorf("transaction %d: %v, want its own error", i, err)
			}
		default:
			if err != nil || gerr != nil {
				t.Errorf("transaction %d: %v; its user: %v", i, err, gerr)
			}
		}
	}
	size, err := s.AuditSize(ctx)
	if err != nil || size != n/2 {
		t.Fatalf("audit log holds %d events (%v), want %d: one per committed transaction", size, err, n/2)
	}
	verifies(t, s)
}

// TestGroupCommitSurvivesAFullDiskMidGroup: one member of a group fills
// the database; it is refused as storage full and leaves nothing, and
// the members committed with it are stored all the same (run again if
// the database rolled the whole transaction back).
func TestGroupCommitSurvivesAFullDiskMidGroup(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	w := s.DBs()["sqlite_writer"]
	var pages int
	if err := w.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	// Room for small rows, not for a 256 KiB one.
	if _, err := w.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+20)); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	const n, big = 9, 4
	errs := queueWrites(t, s, n, func(i int, tx store.Tx) error {
		name := ""
		if i == big {
			name = strings.Repeat("x", 256<<10)
		}
		_, err := createUser(ctx, tx, at, i, name)
		return err
	})
	for i, err := range errs {
		_, gerr := s.UserGetByUsername(ctx, fmt.Sprintf("user%02d", i))
		if i == big {
			if airlock.ErrorKind(err) != airlock.Unavailable || !strings.HasPrefix(airlock.ErrorMessage(err), "storage full") || airlock.ErrorKind(gerr) != airlock.NotFound {
				t.Errorf("the member that fills the disk: %v (its user: %v), want storage full and nothing stored", err, gerr)
			}
			continue
		}
		if err != nil || gerr != nil {
			t.Errorf("member %d of the group: %v; its user: %v", i, err, gerr)
		}
	}
	verifies(t, s)
}

// TestGroupCommitMemberPanic: a member whose function panics aborts
// its group; its caller panics with the value, as without group commit;
// the others are run again and stored; later writes go through.
func TestGroupCommitMemberPanic(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	const n, panics = 6, 3
	var mu sync.Mutex
	recovered := map[int]any{}
	errs := queueWrites(t, s, n, func(i int, tx store.Tx) error {
		if _, err := createUser(ctx, tx, at, i, ""); err != nil {
			return err
		}
		if i == panics {
			panic("a bug in a handler")
		}
		return nil
	}, func(i int, p any) {
		mu.Lock()
		recovered[i] = p
		mu.Unlock()
	})
	for i, err := range errs {
		_, gerr := s.UserGetByUsername(ctx, fmt.Sprintf("user%02d", i))
		if i == panics {
			if recovered[i] != "a bug in a handler" || airlock.ErrorKind(gerr) != airlock.NotFound {
				t.Errorf("the panicking member: its caller recovered %v; its user: %v", recovered[i], gerr)
			}
			continue
		}
		if err != nil || gerr != nil {
			t.Errorf("member %d: %v; its user: %v", i, err, gerr)
		}
	}
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.Update(tctx, func(tx store.Tx) error { return tx.AuditAppend(ctx, event(at, "later", "")) }); err != nil {
		t.Fatalf("a write after the panic: %v", err)
	}
	verifies(t, s)
}

// TestGroupCommitCloseAnswersQueuedWrites: closing the store answers
// every write still queued, and any made after, instead of leaving its
// caller waiting.
func TestGroupCommitCloseAnswersQueuedWrites(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	hold, held := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Update(ctx, func(tx store.Tx) error { close(held); <-hold; return nil })
	}()
	<-held
	const n = 8
	answers := make(chan error, n)
	for range n {
		go func() { answers <- s.Update(ctx, func(tx store.Tx) error { return nil }) }()
	}
	testenv.Eventually(t, fmt.Sprintf("%d writes queued", n), func() bool { return s.WritesQueued() == n })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	close(hold)
	deadline := time.After(time.Minute)
	for i := range n {
		select {
		case <-answers:
		case <-deadline:
			t.Fatalf("waited a minute for the queued writes to be answered at close; %d of %d were", i, n)
		}
	}
	select {
	case <-closed:
	case <-deadline:
		t.Fatal("waited a minute for Close")
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return nil }); err == nil {
		t.Fatal("a write after Close succeeded")
	}
}
