// Package storetest is the conformance suite every storage driver must
// pass unchanged. A behaviour change in storage comes with a case here.
package storetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// Harness tells the suite how to get a database from a driver.
type Harness struct {
	// New returns a fresh, migrated, isolated store and a locator string
	// that Open accepts to reach the same database again.
	New func(t *testing.T) (store.Store, string)
	// Open opens an existing database by locator (running migrations).
	Open func(ctx context.Context, locator string) (store.Store, error)
	// Exec runs raw SQL against the database, as someone with database
	// access would, bypassing the store.
	Exec func(t *testing.T, s store.Store, sql string) error
	// DisableAppendOnly removes the triggers that keep the audit tables
	// append-only, as an attacker with database access could.
	DisableAppendOnly func(t *testing.T, s store.Store)
	// OneProcess: the database serves one process (SQLite), so a test's
	// replicas share one store — its workers still claim concurrently.
	// Two processes writing one SQLite file wait for its lock by polling,
	// and one can starve the other past the busy timeout.
	OneProcess bool
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	t.Run("Users", func(t *testing.T) { testUsers(t, h) })
	t.Run("Groups", func(t *testing.T) { testGroups(t, h) })
	t.Run("Tokens", func(t *testing.T) { testTokens(t, h, t0) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, h, t0) })
	t.Run("LoginFailures", func(t *testing.T) { testLoginFailures(t, h, t0) })
	t.Run("LoginReports", func(t *testing.T) { testLoginReports(t, h, t0) })
	t.Run("Chat", func(t *testing.T) { testChat(t, h, t0) })
	t.Run("Standing", func(t *testing.T) { testStanding(t, h, t0) })
	t.Run("AuditAppend", func(t *testing.T) { testAuditAppend(t, h) })
	t.Run("AuditTree", func(t *testing.T) { testAuditTree(t, h) })
	t.Run("AuditBatch", func(t *testing.T) { testAuditBatch(t, h) })
	t.Run("AuditListNewestAndTimes", func(t *testing.T) { testAuditListNewest(t, h) })
	t.Run("ChangeNeedsEvent", func(t *testing.T) { testChangeNeedsEvent(t, h) })
	t.Run("EventRollsBackWithChange", func(t *testing.T) { testEventRollsBack(t, h) })
	t.Run("AuditAppendOnly", func(t *testing.T) { testAuditAppendOnly(t, h) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, h) })
	t.Run("NewerSchemaRefused", func(t *testing.T) { testNewerSchema(t, h) })
	t.Run("Procedures", func(t *testing.T) { testProcedures(t, h) })
	t.Run("PolicyVersions", func(t *testing.T) { testPolicyVersions(t, h) })
	t.Run("Runs", func(t *testing.T) { testRuns(t, h, t0) })
	t.Run("RunClaimIsExclusive", func(t *testing.T) { testRunClaimExclusive(t, h, t0) })
	t.Run("RunOutput", func(t *testing.T) { testRunOutput(t, h, t0) })
	t.Run("RunClaimNotStarved", func(t *testing.T) { testClaimNotStarved(t, h) })
	t.Run("RunClaimsAcrossReplicas", func(t *testing.T) { testClaimsAcrossReplicas(t, h) })
	t.Run("NodesAndSecrets", func(t *testing.T) { testNodesAndSecrets(t, h) })
	t.Run("SecretScopes", func(t *testing.T) { testSecretScopes(t, h) })
	t.Run("Outbox", func(t *testing.T) { testOutbox(t, h) })
	t.Run("Stats", func(t *testing.T) { testStats(t, h) })
	t.Run("AuditTamperDetected", func(t *testing.T) { testAuditTamper(t, h) })
	t.Run("CrashLosesNoCommittedRow", func(t *testing.T) { testCrash(t, h) })
	t.Run("AnyDay", func(t *testing.T) { testAnyDay(t, h) })
}

// t0 is the suite's time. Every time a case writes or compares derives
// from it (or from the base time the case is given); no case reads the
// wall clock, so the suite passes on any day.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func event(typ, subject string) *store.AuditEvent {
	return &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, t0), Time: t0,
		Type: typ, Subject: subject, ActorName: "storetest", Outcome: "success", Details: []byte(`{"k":"v"}`)}
}

func newUser(name string) *store.User {
	return &store.User{ID: airlock.NewID(airlock.PrefixUser, t0), Username: name, Kind: store.AccountPerson, DisplayName: strings.ToUpper(name),
		Email: name + "@example.com", PasswordHash: "$argon2id$x", CreatedAt: t0, UpdatedAt: t0}
}

// insertUser inserts u with its audit event.
func insertUser(t *testing.T, s store.Store, u *store.User) {
	t.Helper()
	err := s.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.UserInsert(context.Background(), u); err != nil {
			return err
		}
		return tx.AuditAppend(context.Background(), event("user.create", u.ID))
	})
	if err != nil {
		t.Fatalf("insert user %s: %v", u.Username, err)
	}
}

func wantKind(t *testing.T, err error, kind airlock.Kind) {
	t.Helper()
	if got := airlock.ErrorKind(err); got != kind {
		t.Fatalf("error kind = %q (%v), want %q", got, err, kind)
	}
}

func testUsers(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	u := newUser("alice")
	u.Issuer, u.Subject = "https://idp", "sub-1"
	insertUser(t, s, u)

	got, err := s.UserGetByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if *got != *u {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, u)
	}
	if got, err = s.UserGetBySubject(ctx, "https://idp", "sub-1"); err != nil || got.ID != u.ID {
		t.Fatalf("by subject: %v %v", got, err)
	}
	_, err = s.UserGetByID(ctx, "usr_missing")
	wantKind(t, err, airlock.NotFound)

	dup := newUser("alice")
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.AuditAppend(ctx, event("user.create", dup.ID)); err != nil {
			return err
		}
		return tx.UserInsert(ctx, dup)
	})
	wantKind(t, err, airlock.Conflict)
	if n, _ := s.AuditSize(ctx); n != 1 {
		t.Fatalf("refused insert left its audit event: size %d", n)
	}

	u.MustChangePassword, u.Disabled, u.UpdatedAt = true, true, t0.Add(time.Hour)
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.UserUpdate(ctx, u); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("user.update", u.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.UserGetByID(ctx, u.ID)
	if !got.MustChangePassword || !got.Disabled || !got.UpdatedAt.Equal(u.UpdatedAt) {
		t.Fatalf("update not stored: %+v", got)
	}
	insertUser(t, s, newUser("bob"))
	list, err := s.UserList(ctx)
	if err != nil || len(list) != 2 || list[0].Username != "alice" || list[1].Username != "bob" {
		t.Fatalf("list = %v, %v", list, err)
	}
	missing := newUser("nobody")
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.AuditAppend(ctx, event("user.update", missing.ID)); err != nil {
			return err
		}
		return tx.UserUpdate(ctx, missing)
	})
	wantKind(t, err, airlock.NotFound)
}

func testGroups(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	alice, bob := newUser("alice"), newUser("bob")
	insertUser(t, s, alice)
	insertUser(t, s, bob)
	ops := &store.Group{ID: airlock.NewID(airlock.PrefixGroup, t0), Name: "ops", Description: "Operations", CreatedAt: t0}
	dev := &store.Group{ID: airlock.NewID(airlock.PrefixGroup, t0), Name: "dev", CreatedAt: t0}
	err := s.Update(ctx, func(tx store.Tx) error {
		for _, g := range []*store.Group{ops, dev} {
			if err := tx.GroupInsert(ctx, g); err != nil {
				return err
			}
		}
		for _, m := range []*store.GroupMember{
			{GroupID: ops.ID, UserID: bob.ID, Source: store.MemberManual, CreatedAt: t0},
			{GroupID: dev.ID, UserID: alice.ID, Source: store.MemberSSO, CreatedAt: t0},
			{GroupID: ops.ID, UserID: alice.ID, Source: store.MemberManual, CreatedAt: t0},
		} {
			if err := tx.GroupMemberAdd(ctx, m); err != nil {
				return err
			}
		}
		return tx.AuditAppend(ctx, event("group.create", "ops,dev"))
	})
	if err != nil {
		t.Fatal(err)
	}
	gs, err := s.GroupListForUser(ctx, alice.ID)
	if err != nil || len(gs) != 2 || gs[0].Name != "dev" || gs[1].Name != "ops" {
		t.Fatalf("alice's groups = %v, %v", gs, err)
	}
	ms, err := s.GroupMemberList(ctx, ops.ID)
	if err != nil || len(ms) != 2 {
		t.Fatalf("ops members = %v, %v", ms, err)
	}
	g, err := s.GroupGetByName(ctx, "ops")
	if err != nil || *g != *ops {
		t.Fatalf("get ops = %+v, %v", g, err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.GroupMemberRemove(ctx, ops.ID, alice.ID); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("group.member_remove", ops.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	if gs, _ := s.GroupListForUser(ctx, alice.ID); len(gs) != 1 {
		t.Fatalf("after remove alice has %d groups", len(gs))
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.GroupMemberAdd(ctx, &store.GroupMember{GroupID: "grp_missing", UserID: alice.ID, Source: store.MemberManual, CreatedAt: t0})
	})
	if err == nil {
		t.Fatal("membership in a missing group was stored: foreign keys are off")
	}
	if all, _ := s.GroupList(ctx); len(all) != 2 {
		t.Fatalf("groups = %d", len(all))
	}
}

func testTokens(t *testing.T, h Harness, t0 time.Time) {
	ctx := context.Background()
	s, _ := h.New(t)
	u := newUser("alice")
	insertUser(t, s, u)
	tok := &store.Token{ID: airlock.NewID(airlock.PrefixToken, t0), UserID: u.ID, Name: "ci",
		Hash: []byte("0123456789abcdef0123456789abcdef"), CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour),
		Scope: []string{"propose", "run:flush-cache@staging"}}
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.TokenInsert(ctx, tok); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("token.create", tok.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.TokenGetByHash(ctx, tok.Hash)
	if err != nil || got.ID != tok.ID || !got.ExpiresAt.Equal(tok.ExpiresAt) || !got.RevokedAt.IsZero() || !got.LastUsedAt.IsZero() ||
		strings.Join(got.Scope, " ") != "propose run:flush-cache@staging" {
		t.Fatalf("by hash = %+v, %v", got, err)
	}
	if err := s.TokenTouch(ctx, tok.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.TokenGetByID(ctx, tok.ID); !got.LastUsedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("last used = %v", got.LastUsedAt)
	}
	revoke := func() error {
		return s.Update(ctx, func(tx store.Tx) error {
			if err := tx.TokenRevoke(ctx, tok.ID, t0.Add(time.Hour)); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, event("token.revoke", tok.ID))
		})
	}
	if err := revoke(); err != nil {
		t.Fatal(err)
	}
	wantKind(t, revoke(), airlock.NotFound)
	list, err := s.TokenListForUser(ctx, u.ID)
	if err != nil || len(list) != 1 || !list[0].RevokedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("list = %v, %v", list, err)
	}
	_, err = s.TokenGetByHash(ctx, []byte("nope"))
	wantKind(t, err, airlock.NotFound)
}

// testLoginFailures: failed logins are counted per account and source
// (with the latest), per address and per account since a time, pruned
// past a time, cleared per account, and only with an audit event.
func testLoginFailures(t *testing.T, h Harness, t0 time.Time) {
	ctx := context.Background()
	s, _ := h.New(t)
	add := func(account, addr string, at, prune time.Time) {
		t.Helper()
		if err := s.Update(ctx, func(tx store.Tx) error {
			if err := tx.LoginFailureAdd(ctx, account, addr, at, prune); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, event("user.login_failed", ""))
		}); err != nil {
			t.Fatal(err)
		}
	}
	// stats is "pair/source/account" and, with latest, the offsets of the
	// latest failures from t0 ("-" for none).
	stats := func(account, addr string, since time.Time) string {
		t.Helper()
		st, err := s.LoginFailureStats(ctx, account, addr, since)
		if err != nil {
			t.Fatal(err)
		}
		off := func(at time.Time) string {
			if at.IsZero() {
				return "-"
			}
			return at.Sub(t0).String()
		}
		return fmt.Sprintf("%d/%d/%d %s %s %s", st.Pair, st.Source, st.Account, off(st.PairLast), off(st.SourceLast), off(st.AccountLast))
	}
	add("alice", "192.0.2.1", t0, t0.Add(-time.Hour))
	add("alice", "192.0.2.1", t0.Add(time.Minute), t0.Add(-time.Hour))
	add("bob", "192.0.2.1", t0.Add(2*time.Minute), t0.Add(-time.Hour))
	add("alice", "198.51.100.9", t0.Add(150*time.Second), t0.Add(-time.Hour))
	if got, want := stats("alice", "192.0.2.1", t0), "2/3/3 1m0s 2m0s 2m30s"; got != want {
		t.Fatalf("stats %s, want %s", got, want)
	}
	if got, want := stats("alice", "192.0.2.1", t0.Add(90*time.Second)), "0/1/1 - 2m0s 2m30s"; got != want {
		t.Fatalf("stats since later %s, want %s", got, want)
	}
	if got, want := stats("alice", "203.0.113.1", t0), "0/0/3 - - 2m30s"; got != want {
		t.Fatalf("stats from another address %s, want %s", got, want)
	}
	// Adding prunes what is older than the bound.
	add("carol", "198.51.100.1", t0.Add(3*time.Minute), t0.Add(90*time.Second))
	if got, want := stats("alice", "192.0.2.1", t0.Add(-time.Hour)), "0/1/1 - 2m0s 2m30s"; got != want {
		t.Fatalf("after pruning %s, want %s", got, want)
	}
	add("carol", "203.0.113.7", t0.Add(4*time.Minute), t0)
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.LoginFailuresClear(ctx, "carol", "198.51.100.1") }); err == nil {
		t.Fatal("clearing failures without an audit event was committed")
	}
	if err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.LoginFailuresClear(ctx, "carol", "198.51.100.1"); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("user.login", ""))
	}); err != nil {
		t.Fatal(err)
	}
	// Only that source's failures go: another address's on carol stay.
	if got, want := stats("carol", "198.51.100.1", t0), "0/0/1 - - 4m0s"; got != want {
		t.Fatalf("after clearing %s, want %s", got, want)
	}
}

func testSessions(t *testing.T, h Harness, t0 time.Time) {
	ctx := context.Background()
	s, _ := h.New(t)
	u := newUser("alice")
	insertUser(t, s, u)
	var sessions []*store.Session
	for i := range 3 {
		sessions = append(sessions, &store.Session{ID: airlock.NewID(airlock.PrefixSession, t0), UserID: u.ID,
			Hash: []byte(fmt.Sprintf("hash-%d", i)), Method: "password", CreatedAt: t0, LastSeenAt: t0,
			ExpiresAt: t0.Add(12 * time.Hour), SourceAddr: "127.0.0.1", UserAgent: "test"})
	}
	err := s.Update(ctx, func(tx store.Tx) error {
		for _, se := range sessions {
			if err := tx.SessionInsert(ctx, se); err != nil {
				return err
			}
		}
		return tx.AuditAppend(ctx, event("session.create", u.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.SessionGetByHash(ctx, []byte("hash-0"))
	if err != nil || got.ID != sessions[0].ID || !got.ExpiresAt.Equal(sessions[0].ExpiresAt) || got.UserAgent != "test" {
		t.Fatalf("by hash = %+v, %v", got, err)
	}
	if err := s.SessionTouch(ctx, got.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var n int64
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.SessionRevoke(ctx, sessions[0].ID, t0.Add(time.Hour)); err != nil {
			return err
		}
		var err error
		if n, err = tx.SessionRevokeForUser(ctx, u.ID, sessions[2].ID, t0.Add(time.Hour)); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("session.revoke", u.ID))
	})
	if err != nil || n != 1 {
		t.Fatalf("revoke for user revoked %d (%v), want the 1 live but the kept one", n, err)
	}
	if kept, _ := s.SessionGetByHash(ctx, []byte("hash-2")); !kept.RevokedAt.IsZero() {
		t.Fatal("the excepted session was revoked")
	}
	got, _ = s.SessionGetByHash(ctx, []byte("hash-0"))
	if !got.LastSeenAt.Equal(t0.Add(time.Minute)) || !got.RevokedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("session after touch and revoke: %+v", got)
	}
}

func testAuditAppend(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	var want []*store.AuditEvent
	for i := range 5 {
		e := event("test.append", fmt.Sprint(i))
		err := s.Update(ctx, func(tx store.Tx) error { return tx.AuditAppend(ctx, e) })
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != int64(i) {
			t.Fatalf("event %d got position %d", i, e.Seq)
		}
		want = append(want, e)
		// A rolled-back append gives its position back: no gaps.
		_ = s.Update(ctx, func(tx store.Tx) error {
			if err := tx.AuditAppend(ctx, event("test.rolled_back", "x")); err != nil {
				return err
			}
			return errors.New("roll back")
		})
	}
	if n, err := s.AuditSize(ctx); err != nil || n != 5 {
		t.Fatalf("size = %d, %v", n, err)
	}
	got, err := s.AuditList(ctx, store.AuditListParams{After: -1})
	if err != nil || len(got) != 5 {
		t.Fatalf("list = %d, %v", len(got), err)
	}
	for i, e := range got {
		w := want[i]
		if e.Seq != w.Seq || e.ID != w.ID || e.Type != w.Type || e.Subject != w.Subject ||
			!e.Time.Equal(w.Time.Truncate(time.Microsecond)) || string(e.Details) != string(w.Details) {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, e, w)
		}
	}
	page, _ := s.AuditList(ctx, store.AuditListParams{After: 2, Limit: 1})
	if len(page) != 1 || page[0].Seq != 3 {
		t.Fatalf("page after 2 = %v", page)
	}
	one, err := s.AuditGet(ctx, 4)
	if err != nil || one.ID != want[4].ID {
		t.Fatalf("get 4 = %v, %v", one, err)
	}
	_, err = s.AuditGet(ctx, 5)
	wantKind(t, err, airlock.NotFound)
	filtered, _ := s.AuditList(ctx, store.AuditListParams{After: -1, Type: "test.rolled_back"})
	if len(filtered) != 0 {
		t.Fatalf("rolled-back events visible: %v", filtered)
	}
}

// testAuditListNewest: a page of the log's end newest first, the page
// before it by Before, and a time range (From inclusive, To exclusive)
// with the other filters.
func testAuditListNewest(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	for i := range 10 {
		e := event("test.tick", fmt.Sprint(i%2))
		e.Time = t0.Add(time.Duration(i) * time.Minute)
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.AuditAppend(ctx, e) }); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(evs []*store.AuditEvent) string {
		var out []string
		for _, e := range evs {
			out = append(out, fmt.Sprint(e.Seq))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		name string
		p    store.AuditListParams
		want string
	}{
		{"newest", store.AuditListParams{After: -1, Newest: true, Limit: 3}, "9,8,7"},
		{"page before", store.AuditListParams{After: -1, Before: 7, Newest: true, Limit: 3}, "6,5,4"},
		{"last page", store.AuditListParams{After: -1, Before: 2, Newest: true, Limit: 3}, "1,0"},
		{"later page", store.AuditListParams{After: 6, Limit: 3}, "7,8,9"},
		{"from inclusive, to exclusive", store.AuditListParams{After: -1, From: t0.Add(3 * time.Minute), To: t0.Add(6 * time.Minute)}, "3,4,5"},
		{"time and subject, newest", store.AuditListParams{After: -1, From: t0.Add(2 * time.Minute), Subject: "1", Newest: true, Limit: 2}, "9,7"},
		{"to only", store.AuditListParams{After: -1, To: t0.Add(2 * time.Minute), Newest: true}, "1,0"},
		{"empty range", store.AuditListParams{After: -1, From: t0.Add(time.Hour)}, ""},
	} {
		got, err := s.AuditList(ctx, c.p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if seqs(got) != c.want {
			t.Errorf("%s: got %q, want %q", c.name, seqs(got), c.want)
		}
	}
}

func testChangeNeedsEvent(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	err := s.Update(ctx, func(tx store.Tx) error { return tx.UserInsert(ctx, newUser("ghost")) })
	if err == nil {
		t.Fatal("a state change without an audit event committed")
	}
	if _, err := s.UserGetByUsername(ctx, "ghost"); airlock.ErrorKind(err) != airlock.NotFound {
		t.Fatalf("unaudited change is visible: %v", err)
	}
}

func testEventRollsBack(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.UserInsert(ctx, newUser("carol")); err != nil {
			return err
		}
		if err := tx.AuditAppend(ctx, event("user.create", "carol")); err != nil {
			return err
		}
		return errors.New("later step failed")
	})
	if err == nil {
		t.Fatal("expected the error back")
	}
	if n, _ := s.AuditSize(ctx); n != 0 {
		t.Fatalf("event of a rolled-back change kept: size %d", n)
	}
	if _, err := s.UserGetByUsername(ctx, "carol"); airlock.ErrorKind(err) != airlock.NotFound {
		t.Fatalf("rolled-back change visible: %v", err)
	}
}

func testAuditAppendOnly(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.AuditAppend(ctx, event("test.append", "x")) }); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE audit_events SET subject = 'edited'`,
		`DELETE FROM audit_events`,
	} {
		if err := h.Exec(t, s, q); err == nil {
			t.Errorf("%q succeeded on the append-only log", q)
		}
	}
	e, err := s.AuditGet(ctx, 0)
	if err != nil || e.Subject != "x" {
		t.Fatalf("event after attempts: %+v, %v", e, err)
	}
}

func testConcurrentWriters(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				u := newUser(fmt.Sprintf("w%d-%d", w, i))
				u.ID = airlock.NewID(airlock.PrefixUser, t0)
				errs <- s.Update(ctx, func(tx store.Tx) error {
					if err := tx.UserInsert(ctx, u); err != nil {
						return err
					}
					return tx.AuditAppend(ctx, event("user.create", u.ID))
				})
				// Readers run alongside writers.
				if _, err := s.UserGetByUsername(ctx, u.Username); err != nil {
					errs <- fmt.Errorf("read own write: %w", err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent writer: %v", err)
		}
	}
	n, _ := s.AuditSize(ctx)
	if n != writers*each {
		t.Fatalf("audit size %d, want %d", n, writers*each)
	}
	evs, _ := s.AuditList(ctx, store.AuditListParams{After: -1, Limit: writers * each})
	for i, e := range evs {
		if e.Seq != int64(i) {
			t.Fatalf("position %d holds seq %d: the log has a gap", i, e.Seq)
		}
	}
	// Concurrent appenders never fork the tree: the stored hashes are
	// exactly the recomputed ones.
	_, vkey, _ := audit.GenerateKey("x")
	v, _ := note.NewVerifier(vkey)
	if rep, err := audit.Verify(ctx, s, v, nil); err != nil || !rep.OK() {
		t.Fatalf("tree after concurrent appends: %+v %v", rep, err)
	}
}

func testNewerSchema(t *testing.T, h Harness) {
	ctx := context.Background()
	s, loc := h.New(t)
	if v, err := s.SchemaVersion(ctx); err != nil || v < 1 {
		t.Fatalf("schema version %d, %v", v, err)
	}
	if err := h.Exec(t, s, `INSERT INTO airlock_schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	s2, err := h.Open(ctx, loc)
	if err == nil {
		s2.Close()
		t.Fatal("opened a database whose schema is newer than this binary")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("error does not say the schema is newer: %v", err)
	}
}

// CrashChildEnv names the environment variable that turns a test binary
// into the crash test's writer. Drivers call MaybeCrashChild from TestMain.
const CrashChildEnv = "AIRLOCK_STORETEST_CRASH_CHILD"

// MaybeCrashChild, when the test binary was started as the crash test's
// child, writes users with their events forever, printing each ID after
// its commit returns, until it is killed. It never returns then.
func MaybeCrashChild(open func(ctx context.Context, locator string) (store.Store, error)) {
	loc := os.Getenv(CrashChildEnv)
	if loc == "" {
		return
	}
	ctx := context.Background()
	s, err := open(ctx, loc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	for i := 0; ; i++ {
		u := newUser(fmt.Sprintf("crash-%d", i))
		u.ID = airlock.NewID(airlock.PrefixUser, t0)
		err := s.Update(ctx, func(tx store.Tx) error {
			if err := tx.UserInsert(ctx, u); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, event("user.create", u.ID))
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(3)
		}
		fmt.Fprintln(os.Stdout, u.ID)
	}
}

func testCrash(t *testing.T, h Harness) {
	s, loc := h.New(t)
	s.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), CrashChildEnv+"="+loc)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var committed []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		committed = append(committed, sc.Text())
		if len(committed) == 200 {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	// Drain what the pipe still holds: those commits returned too.
	for sc.Scan() {
		committed = append(committed, sc.Text())
	}
	_ = cmd.Wait()
	if len(committed) < 200 {
		t.Fatalf("child committed only %d rows before exiting", len(committed))
	}
	s2, err := h.Open(context.Background(), loc)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s2.Close()
	ctx := context.Background()
	for _, id := range committed {
		if _, err := s2.UserGetByID(ctx, id); err != nil {
			t.Fatalf("committed user %s lost after kill: %v", id, err)
		}
	}
	users, _ := s2.UserList(ctx)
	n, _ := s2.AuditSize(ctx)
	if int64(len(users)) != n {
		t.Fatalf("%d users but %d audit events: a change and its event were split", len(users), n)
	}
}

func testProcedures(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	author := newUser("alice")
	insertUser(t, s, author)
	proc := &store.Procedure{ID: airlock.NewID(airlock.PrefixProc, t0), Name: "restart-api", Owner: "payments", CreatedAt: t0, UpdatedAt: t0}
	v1 := &store.ProcedureVersion{ID: airlock.NewID(airlock.PrefixVersion, t0), ProcedureID: proc.ID, Number: 1, Digest: "sha256:aa",
		Definition: []byte(`{"name":"restart-api"}`), Risk: "medium", Status: store.VersionProposed, AuthorID: author.ID,
		AuthorName: "alice", SourceFile: "ops/restart.yaml", CreatedAt: t0}
	v2 := *v1
	v2.ID, v2.Number, v2.Digest, v2.CreatedAt = airlock.NewID(airlock.PrefixVersion, t0), 2, "sha256:bb", t0.Add(time.Minute)
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.ProcedureInsert(ctx, proc); err != nil {
			return err
		}
		if err := tx.ProcedureVersionInsert(ctx, v1); err != nil {
			return err
		}
		if err := tx.ProcedureVersionInsert(ctx, &v2); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("procedure_version.propose", v1.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ProcedureVersionGet(ctx, v1.ID)
	if err != nil || got.ProcedureName != "restart-api" || string(got.Definition) != string(v1.Definition) || got.SourceFile != v1.SourceFile || !got.DecidedAt.IsZero() {
		t.Fatalf("version round trip: %+v %v", got, err)
	}
	dup := *v1
	dup.ID = airlock.NewID(airlock.PrefixVersion, t0)
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.AuditAppend(ctx, event("procedure_version.propose", dup.ID)); err != nil {
			return err
		}
		return tx.ProcedureVersionInsert(ctx, &dup)
	})
	wantKind(t, err, airlock.Conflict) // number 1 is taken

	r := &store.Review{ID: airlock.NewID(airlock.PrefixReview, t0), VersionID: v1.ID, Digest: v1.Digest, ReviewerID: "usr_bob",
		ReviewerName: "bob", Decision: store.ReviewApprove, Comment: "lgtm", ReviewerGroups: []string{"ops", "admins"}, CreatedAt: t0}
	addReview := func(r *store.Review) error {
		return s.Update(ctx, func(tx store.Tx) error {
			if err := tx.ReviewInsert(ctx, r); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, event("procedure_version.review", r.VersionID))
		})
	}
	if err := addReview(r); err != nil {
		t.Fatal(err)
	}
	again := *r
	again.ID = airlock.NewID(airlock.PrefixReview, t0)
	wantKind(t, addReview(&again), airlock.Conflict) // one review per person per version
	rs, err := s.ReviewList(ctx, v1.ID)
	if err != nil || len(rs) != 1 || rs[0].ReviewerGroups[1] != "admins" || rs[0].Comment != "lgtm" {
		t.Fatalf("reviews = %+v, %v", rs, err)
	}

	proc.ActiveVersionID, proc.OwnerFixed, proc.UpdatedAt = v1.ID, true, t0.Add(time.Hour)
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.ProcedureVersionSetStatus(ctx, v1.ID, store.VersionApproved, t0.Add(time.Hour)); err != nil {
			return err
		}
		if err := tx.ProcedureUpdate(ctx, proc); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("procedure_version.activate", v1.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.ProcedureGetByName(ctx, "restart-api")
	if err != nil || p.ActiveVersionID != v1.ID || !p.OwnerFixed || !p.RetiredAt.IsZero() {
		t.Fatalf("procedure after activation: %+v %v", p, err)
	}
	proposed, _ := s.ProcedureVersionList(ctx, store.ProcedureVersionListParams{Status: store.VersionProposed})
	if len(proposed) != 1 || proposed[0].ID != v2.ID {
		t.Fatalf("proposed versions = %v", proposed)
	}
	all, _ := s.ProcedureVersionList(ctx, store.ProcedureVersionListParams{ProcedureID: proc.ID})
	if len(all) != 2 || all[0].Number != 1 || all[1].Number != 2 || all[0].Status != store.VersionApproved || all[0].DecidedAt.IsZero() {
		t.Fatalf("history = %+v", all)
	}
	if ps, _ := s.ProcedureList(ctx); len(ps) != 1 {
		t.Fatalf("procedures = %d", len(ps))
	}
	_, err = s.ProcedureGetByID(ctx, "prc_missing")
	wantKind(t, err, airlock.NotFound)
}

func testPolicyVersions(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	v1 := &store.PolicyVersion{ID: airlock.NewID(airlock.PrefixPolicy, t0), Number: 1, Digest: "sha256:1", Text: "@id(\"a\")\npermit(principal, action, resource);",
		Status: store.PolicyActive, AuthorID: "", AuthorName: "system", CreatedAt: t0, DecidedAt: t0}
	v2 := &store.PolicyVersion{ID: airlock.NewID(airlock.PrefixPolicy, t0), Number: 2, Digest: "sha256:2", Text: "x", Description: "tighten",
		Status: store.PolicyProposed, AuthorID: "usr_bob", AuthorName: "bob", CreatedAt: t0.Add(time.Minute)}
	insert := func(vs ...*store.PolicyVersion) error {
		return s.Update(ctx, func(tx store.Tx) error {
			for _, v := range vs {
				if err := tx.PolicyVersionInsert(ctx, v); err != nil {
					return err
				}
			}
			return tx.AuditAppend(ctx, event("policy.propose", "x"))
		})
	}
	if err := insert(v1, v2); err != nil {
		t.Fatal(err)
	}
	dup := *v2
	dup.ID = airlock.NewID(airlock.PrefixPolicy, t0)
	wantKind(t, insert(&dup), airlock.Conflict) // numbers are unique
	v2.Status, v2.DecidedByID, v2.DecidedByName, v2.DecisionComment, v2.DecidedAt = store.PolicyActive, "usr_carol", "carol", "ok", t0.Add(time.Hour)
	v1.Status, v1.DecidedAt = store.PolicySuperseded, t0.Add(time.Hour)
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PolicyVersionDecide(ctx, v1); err != nil {
			return err
		}
		if err := tx.PolicyVersionDecide(ctx, v2); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("policy.approve", v2.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	active, err := s.PolicyVersionList(ctx, store.PolicyActive)
	if err != nil || len(active) != 1 || active[0].ID != v2.ID || active[0].DecidedByName != "carol" || active[0].Description != "tighten" {
		t.Fatalf("active = %+v, %v", active, err)
	}
	all, _ := s.PolicyVersionList(ctx, "")
	if len(all) != 2 || all[0].Number != 2 {
		t.Fatalf("all (newest first) = %+v", all)
	}
	got, err := s.PolicyVersionGet(ctx, v1.ID)
	if err != nil || got.Status != store.PolicySuperseded || got.Text != v1.Text {
		t.Fatalf("get = %+v, %v", got, err)
	}
}

// seedProcedure stores a procedure for runs to reference.
func seedProcedure(t *testing.T, s store.Store) *store.Procedure {
	ctx := context.Background()
	p := &store.Procedure{ID: airlock.NewID(airlock.PrefixProc, t0), Name: "flush", Owner: "t", CreatedAt: t0, UpdatedAt: t0}
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.ProcedureInsert(ctx, p); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("procedure.create", p.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newRun(p *store.Procedure, lock string, at time.Time) *store.Run {
	return &store.Run{ID: airlock.NewID(airlock.PrefixRun, at), ProcedureID: p.ID, ProcedureName: p.Name, VersionID: "pv_x",
		Digest: "sha256:d", Environment: "staging", Params: []byte(`{"cache":"sessions"}`), RequesterID: "usr_a", RequesterName: "alice",
		Status: store.RunQueued, Targets: []string{"web-1", "web-2"}, LockKey: lock, Binding: "b", CreatedAt: at, QueuedAt: at}
}

func insertRuns(t *testing.T, s store.Store, runs ...*store.Run) {
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error {
		for _, r := range runs {
			if err := tx.RunInsert(ctx, r); err != nil {
				return err
			}
		}
		return tx.AuditAppend(ctx, event("run.request", "x"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runIDs is the set of the runs' IDs.
func runIDs(runs []*store.Run) map[string]bool {
	ids := map[string]bool{}
	for _, r := range runs {
		ids[r.ID] = true
	}
	return ids
}

func claim(t *testing.T, s store.Store, worker string, at time.Time) *store.Run {
	var got *store.Run
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error {
		var err error
		if got, err = tx.RunClaim(ctx, worker, at); err != nil || got == nil {
			return err
		}
		return tx.AuditAppend(ctx, event("run.start", got.ID))
	})
	if err != nil {
		t.Error(err)
		return nil
	}
	return got
}

func testRuns(t *testing.T, h Harness, t0 time.Time) {
	ctx := context.Background()
	s, _ := h.New(t)
	p := seedProcedure(t, s)
	a := newRun(p, "flush-staging", t0)
	b := newRun(p, "flush-staging", t0.Add(time.Second))
	c := newRun(p, "", t0.Add(2*time.Second))
	a.IdempotencyKey = "k1"
	a.SecretParams = []byte{1, 2, 3}
	insertRuns(t, s, a, b, c)
	got, err := s.RunGet(ctx, a.ID)
	if err != nil || got.Targets[1] != "web-2" || string(got.Params) != `{"cache":"sessions"}` || got.SecretParams[2] != 3 || !got.QueuedAt.Equal(t0) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if st, err := s.RunState(ctx, a.ID); err != nil || *st != (store.RunState{Status: got.Status, Error: got.Error, ApprovalsRequired: got.ApprovalsRequired}) {
		t.Fatalf("state: %+v %v, want that of %+v", st, err, got)
	}
	if _, err := s.RunState(ctx, "run_missing"); airlock.ErrorKind(err) != airlock.NotFound {
		t.Fatalf("state of a missing run: %v", err)
	}
	if r, err := s.RunGetByIdempotencyKey(ctx, "usr_a", "k1"); err != nil || r.ID != a.ID {
		t.Fatalf("by idempotency key: %v %v", r, err)
	}
	dup := newRun(p, "", t0)
	dup.IdempotencyKey = "k1"
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.AuditAppend(ctx, event("run.request", dup.ID)); err != nil {
			return err
		}
		return tx.RunInsert(ctx, dup)
	})
	wantKind(t, err, airlock.Conflict)

	// a holds the lock; b (same lock) waits; c (no lock) runs.
	if r := claim(t, s, "w1", t0.Add(10*time.Second)); r == nil || r.ID != a.ID || r.Status != store.RunRunning || r.Attempt != 1 || r.WorkerID != "w1" {
		t.Fatalf("first claim: %+v", r)
	}
	if r := claim(t, s, "w1", t0.Add(10*time.Second)); r == nil || r.ID != c.ID {
		t.Fatalf("second claim should skip the locked run: %+v", r)
	}
	if r := claim(t, s, "w2", t0.Add(10*time.Second)); r != nil {
		t.Fatalf("claimed %s while its lock is held", r.ID)
	}
	a.Status, a.FinishedAt, a.SecretParams, a.OutputDigest = store.RunSucceeded, t0.Add(time.Minute), nil, "sha256:o"
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.RunUpdate(ctx, a); err != nil {
			return err
		}
		if err := tx.RunLockRelease(ctx, a.ID); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("run.finish", a.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := claim(t, s, "w2", t0.Add(2*time.Minute)); r == nil || r.ID != b.ID {
		t.Fatalf("claim after release: %+v", r)
	}
	got, _ = s.RunGet(ctx, a.ID)
	if got.SecretParams != nil || got.OutputDigest != "sha256:o" {
		t.Fatalf("after finish: %+v", got)
	}

	// Heartbeats and stale runs: c was claimed by w1 at t0+10s; b by w2,
	// which beats it at t0+1h. A heartbeat keeps only the runs it names
	// that its worker holds: w1 naming b, or naming nothing, keeps no run.
	for _, hb := range []struct {
		worker string
		runs   []string
	}{{"w2", []string{b.ID}}, {"w1", []string{b.ID}}, {"w1", nil}} {
		if err := s.RunHeartbeat(ctx, hb.worker, hb.runs, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	stale, _ := s.RunList(ctx, store.RunListParams{HeartbeatBefore: t0.Add(30 * time.Minute)})
	if len(stale) != 1 || stale[0].ID != c.ID {
		t.Fatalf("stale before t0+30m = %v, want only %s", runIDs(stale), c.ID)
	}
	stale, _ = s.RunList(ctx, store.RunListParams{HeartbeatBefore: t0.Add(2 * time.Hour)})
	if ids := runIDs(stale); len(ids) != 2 || !ids[b.ID] || !ids[c.ID] {
		t.Fatalf("stale before t0+2h = %v, want %s and %s", ids, b.ID, c.ID)
	}
	if got, _ := s.RunGet(ctx, c.ID); !got.StartedAt.Equal(t0.Add(10*time.Second)) || !got.HeartbeatAt.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("claim times: started %v heartbeat %v, want both t0+10s", got.StartedAt, got.HeartbeatAt)
	}

	// Approvals, nodes, steps, output.
	ap := &store.RunApproval{ID: airlock.NewID(airlock.PrefixRunApproval, t0), RunID: b.ID, ApproverID: "usr_b", ApproverName: "bob",
		Decision: "approve", Comment: "ok", Binding: "b", CreatedAt: t0}
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.RunApprovalInsert(ctx, ap); err != nil {
			return err
		}
		if err := tx.RunNodePut(ctx, &store.RunNode{RunID: b.ID, Node: "web-1", Status: "running", StartedAt: t0}); err != nil {
			return err
		}
		if err := tx.RunNodePut(ctx, &store.RunNode{RunID: b.ID, Node: "web-1", Status: "failed", ExitCode: 2, Error: "boom", StartedAt: t0, FinishedAt: t0}); err != nil {
			return err
		}
		if err := tx.RunStepPut(ctx, &store.RunStep{RunID: b.ID, Node: "web-1", Index: 0, Step: "flush", Status: "failed", ExitCode: 2}); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("run.approve", b.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	dupAp := *ap
	dupAp.ID = airlock.NewID(airlock.PrefixRunApproval, t0)
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.AuditAppend(ctx, event("run.approve", b.ID)); err != nil {
			return err
		}
		return tx.RunApprovalInsert(ctx, &dupAp)
	})
	wantKind(t, err, airlock.Conflict)
	aps, _ := s.RunApprovalList(ctx, b.ID)
	nodes, _ := s.RunNodeList(ctx, b.ID)
	steps, _ := s.RunStepList(ctx, b.ID)
	if len(aps) != 1 || len(nodes) != 1 || nodes[0].ExitCode != 2 || nodes[0].Error != "boom" || len(steps) != 1 || steps[0].Step != "flush" {
		t.Fatalf("approvals %v nodes %v steps %v", aps, nodes, steps)
	}
	var chunks []*store.OutputChunk
	for i := range 5 {
		chunks = append(chunks, &store.OutputChunk{RunID: b.ID, Seq: int64(i + 1), Node: "web-1", Stream: store.StreamStdout, Data: []byte{byte('a' + i), 0, 255}, CreatedAt: t0})
	}
	held, _ := s.RunGet(ctx, b.ID)
	lease := store.Lease{RunID: b.ID, WorkerID: "w2", Attempt: held.Attempt}
	// Only the attempt that holds the run writes its output: not another
	// worker, not another attempt, not after the run ended.
	for _, l := range []store.Lease{{RunID: b.ID, WorkerID: "w1", Attempt: held.Attempt}, {RunID: b.ID, WorkerID: "w2", Attempt: held.Attempt + 1},
		{RunID: a.ID, WorkerID: a.WorkerID, Attempt: a.Attempt}} {
		if err := s.RunOutputAppend(ctx, l, chunks); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("output appended under %+v, which does not hold the run: %v", l, err)
		}
	}
	if err := s.RunOutputAppend(ctx, lease, chunks); err != nil {
		t.Fatal(err)
	}
	out, _ := s.RunOutputList(ctx, b.ID, 2, 2)
	if len(out) != 2 || out[0].Seq != 3 || string(out[0].Data) != "c\x00\xff" || out[0].Attempt != held.Attempt {
		t.Fatalf("output after 2: %+v", out)
	}
	if err := s.RunOutputAppend(ctx, lease, chunks[:1]); err == nil {
		t.Fatal("a duplicate output sequence number was stored")
	}
	// A step's result per attempt: attempt 2 of the same step on the same
	// node is a record of its own.
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.RunStepPut(ctx, &store.RunStep{RunID: b.ID, Attempt: 2, Node: "web-1", Index: 0, Step: "flush", Status: "succeeded", ExitCode: 0}); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, event("run.step", b.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	steps, _ = s.RunStepList(ctx, b.ID)
	if len(steps) != 2 || steps[0].Attempt != 1 || steps[0].Status != "failed" || steps[1].Attempt != 2 || steps[1].Status != "succeeded" {
		t.Fatalf("steps of two attempts: %+v %+v", steps[0], steps[len(steps)-1])
	}
	list, _ := s.RunList(ctx, store.RunListParams{Status: store.RunSucceeded})
	if len(list) != 1 || list[0].ID != a.ID {
		t.Fatalf("list by status: %v", list)
	}
}

// testRunClaimExclusive has several workers claim concurrently: every
// queued run is claimed exactly once, and never two runs of one lock at
// a time.
func testRunClaimExclusive(t *testing.T, h Harness, t0 time.Time) {
	s, _ := h.New(t)
	p := seedProcedure(t, s)
	var runs []*store.Run
	for i := range 40 {
		lock := ""
		if i%4 == 0 {
			lock = "shared"
		}
		runs = append(runs, newRun(p, lock, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	insertRuns(t, s, runs...)
	var mu sync.Mutex
	claimed := map[string]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := fmt.Sprintf("w%d", w)
			for range 20 {
				r := claim(t, s, worker, t0.Add(time.Minute))
				if r == nil {
					continue
				}
				mu.Lock()
				if prev, ok := claimed[r.ID]; ok {
					t.Errorf("run %s claimed by %s and %s", r.ID, prev, worker)
				}
				claimed[r.ID] = worker
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// 30 runs without a lock, and one of the 10 "shared" runs.
	if len(claimed) != 31 {
		t.Fatalf("%d runs claimed, want 31 (30 unlocked + 1 holding the shared lock)", len(claimed))
	}
}

func testNodesAndSecrets(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.New(t)
	n := &store.Node{Name: "web-1", Address: "10.0.0.1", Port: 22, User: "deploy", Environment: "production", Tags: []string{"api", "web"},
		Attributes: map[string]string{"region": "eu"}, HostKey: "ssh-ed25519 AAAA", Credential: "ssh/deploy", Transport: store.TransportSSH,
		Source: "file", CreatedAt: t0, UpdatedAt: t0}
	put := func(fn func(tx store.Tx) error) error {
		return s.Update(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return tx.AuditAppend(ctx, event("node.put", "x"))
		})
	}
	if err := put(func(tx store.Tx) error { return tx.NodeUpsert(ctx, n) }); err != nil {
		t.Fatal(err)
	}
	n.Port, n.Tags = 2222, []string{"api"}
	if err := put(func(tx store.Tx) error { return tx.NodeUpsert(ctx, n) }); err != nil {
		t.Fatal(err)
	}
	got, err := s.NodeGet(ctx, "web-1")
	if err != nil || got.Port != 2222 || len(got.Tags) != 1 || got.Attributes["region"] != "eu" || got.HostKey != n.HostKey {
		t.Fatalf("node: %+v %v", got, err)
	}
	// By name, many at once: more than one IN list holds, a name twice,
	// names that are not nodes.
	var names []string
	for i := range 300 {
		m := *n
		m.Name = fmt.Sprintf("fleet-%03d", i)
		if err := put(func(tx store.Tx) error { return tx.NodeUpsert(ctx, &m) }); err != nil {
			t.Fatal(err)
		}
		names = append(names, m.Name)
	}
	named, err := s.NodesNamed(ctx, append(names, "web-1", "fleet-007", "nope", "web-1' OR '1'='1"))
	if err != nil || len(named) != 301 || named["web-1"].Port != 2222 || named["fleet-299"].Attributes["region"] != "eu" || named["nope"] != nil {
		t.Fatalf("nodes by name: %d, %v", len(named), err)
	}
	for _, name := range names {
		if err := put(func(tx store.Tx) error { return tx.NodeDelete(ctx, name) }); err != nil {
			t.Fatal(err)
		}
	}
	sec := &store.SecretRecord{Name: "ssh/deploy", Ciphertext: []byte{9, 9}, KeyID: "k1", CreatedAt: t0, UpdatedAt: t0, UpdatedBy: "bob"}
	if err := put(func(tx store.Tx) error { return tx.SecretPut(ctx, sec) }); err != nil {
		t.Fatal(err)
	}
	sec.Ciphertext = []byte{7}
	if err := put(func(tx store.Tx) error { return tx.SecretPut(ctx, sec) }); err != nil {
		t.Fatal(err)
	}
	if r, err := s.SecretGet(ctx, "ssh/deploy"); err != nil || r.Ciphertext[0] != 7 {
		t.Fatalf("secret: %+v %v", r, err)
	}
	if err := put(func(tx store.Tx) error { return tx.NodeDelete(ctx, "web-1") }); err != nil {
		t.Fatal(err)
	}
	if ns, _ := s.NodeList(ctx); len(ns) != 0 {
		t.Fatal("node not deleted")
	}
	wantKind(t, put(func(tx store.Tx) error { return tx.SecretDelete(ctx, "nope") }), airlock.NotFound)
}
