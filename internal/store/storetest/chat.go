package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
)

// testChat: chat links (one Airlock account per chat user, listed per
// user, removed only by their owner), link codes that work once, and
// request signatures that are refused the second time, on every replica.
func testChat(t *testing.T, h Harness, t0 time.Time) {
	ctx := context.Background()
	s, loc := h.New(t)
	alice, bob := newUser("alice"), newUser("bob")
	alice.CreatedAt, alice.UpdatedAt, bob.CreatedAt, bob.UpdatedAt = t0, t0, t0, t0
	insertUser(t, s, alice)
	insertUser(t, s, bob)
	update := func(fn func(tx store.Tx) error) error {
		return s.Update(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, event("chat.link", ""))
		})
	}

	l1 := &store.ChatLink{UserID: bob.ID, Provider: "slack", TeamID: "T1", ExternalID: "U1", CreatedAt: t0}
	l2 := &store.ChatLink{UserID: bob.ID, Provider: "slack", TeamID: "T2", ExternalID: "U1", CreatedAt: t0.Add(time.Second)}
	for _, l := range []*store.ChatLink{l1, l2} {
		if err := update(func(tx store.Tx) error { return tx.ChatLinkAdd(ctx, l) }); err != nil {
			t.Fatal(err)
		}
	}
	// The same chat user cannot be a second account too.
	err := update(func(tx store.Tx) error {
		return tx.ChatLinkAdd(ctx, &store.ChatLink{UserID: alice.ID, Provider: "slack", TeamID: "T1", ExternalID: "U1", CreatedAt: t0})
	})
	wantKind(t, err, airlock.Conflict)
	got, err := s.ChatLinkGet(ctx, "slack", "T1", "U1")
	if err != nil || *got != *l1 {
		t.Fatalf("get: %+v %v, want %+v", got, err, l1)
	}
	_, err = s.ChatLinkGet(ctx, "slack", "T1", "U2")
	wantKind(t, err, airlock.NotFound)
	ls, err := s.ChatLinkList(ctx, bob.ID)
	if err != nil || len(ls) != 2 || *ls[0] != *l1 || *ls[1] != *l2 {
		t.Fatalf("bob's links: %+v %v", ls, err)
	}
	if ls, _ := s.ChatLinkList(ctx, alice.ID); len(ls) != 0 {
		t.Fatalf("alice has links: %+v", ls)
	}
	// Only the owner's link goes.
	err = update(func(tx store.Tx) error { return tx.ChatLinkDelete(ctx, alice.ID, "slack", "T1", "U1") })
	wantKind(t, err, airlock.NotFound)
	if err := update(func(tx store.Tx) error { return tx.ChatLinkDelete(ctx, bob.ID, "slack", "T1", "U1") }); err != nil {
		t.Fatal(err)
	}
	if ls, _ := s.ChatLinkList(ctx, bob.ID); len(ls) != 1 || *ls[0] != *l2 {
		t.Fatalf("after unlinking: %+v", ls)
	}

	// A code works once; adding one forgets the expired ones.
	old := &store.ChatLinkCode{Hash: []byte("old-code-hash"), UserID: alice.ID, ExpiresAt: t0.Add(10 * time.Minute)}
	fresh := &store.ChatLinkCode{Hash: []byte("new-code-hash"), UserID: bob.ID, ExpiresAt: t0.Add(30 * time.Minute)}
	if err := update(func(tx store.Tx) error { return tx.ChatLinkCodeAdd(ctx, old, t0) }); err != nil {
		t.Fatal(err)
	}
	if err := update(func(tx store.Tx) error { return tx.ChatLinkCodeAdd(ctx, fresh, t0.Add(20*time.Minute)) }); err != nil {
		t.Fatal(err)
	}
	take := func(hash string) (*store.ChatLinkCode, error) {
		var c *store.ChatLinkCode
		err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			c, err = tx.ChatLinkCodeTake(ctx, []byte(hash))
			return err
		})
		return c, err
	}
	_, err = take("old-code-hash")
	wantKind(t, err, airlock.NotFound)
	c, err := take("new-code-hash")
	if err != nil || c.UserID != bob.ID || !c.ExpiresAt.Equal(fresh.ExpiresAt) {
		t.Fatalf("take: %+v %v", c, err)
	}
	_, err = take("new-code-hash")
	wantKind(t, err, airlock.NotFound)

	// A signature is fresh once, on any connection to the database; it
	// is forgotten only after pruneBefore passes it.
	seen := func(st store.Store, sig string, at time.Time) bool {
		t.Helper()
		var ok bool
		if err := st.Update(ctx, func(tx store.Tx) error {
			var err error
			ok, err = tx.ChatSeenAdd(ctx, sig, at, at.Add(-10*time.Minute))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !seen(s, "v0=aa", t0) {
		t.Fatal("a new signature counts as seen")
	}
	other, err := h.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if seen(other, "v0=aa", t0.Add(time.Minute)) {
		t.Fatal("a replayed signature is fresh on another replica")
	}
	if !seen(other, "v0=bb", t0.Add(11*time.Minute)) {
		t.Fatal("another signature counts as seen")
	}
	if !seen(s, "v0=aa", t0.Add(12*time.Minute)) {
		t.Fatal("a signature seen before the pruning window is still remembered")
	}
}
