package storetest

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlstore"
)

// UpgradeCheck migrates db (of dialect d) part-way through ms, fills it
// as an older Airlock would, and checks what reopen — with every
// migration applied — finds.
type UpgradeCheck func(t *testing.T, db *sql.DB, d sqlstore.Dialect, ms []sqlstore.Migration, lock string, reopen func(t *testing.T) store.Store)

var _ UpgradeCheck = SecretScopesUpgrade

// AccountLinksUpgrade: the accounts created, and the memberships
// granted, by a person before user changes were under dual control are
// linked to that person at the upgrade, as the audit log recorded them —
// not those of the system, the demo, SSO, or a user adding themselves.
func AccountLinksUpgrade(t *testing.T, db *sql.DB, d sqlstore.Dialect, ms []sqlstore.Migration, lock string, reopen func(t *testing.T) store.Store) {
	ctx := context.Background()
	at := slices.IndexFunc(ms, func(m sqlstore.Migration) bool { return m.Name == "user_changes" })
	if at < 0 {
		t.Fatal("no user_changes migration")
	}
	if err := sqlstore.Migrate(ctx, db, d, ms[:at], lock); err != nil {
		t.Fatal(err)
	}
	old := sqlstore.New(db, db, d, nil)
	ev := func(typ, actorID, actor, subject string, details map[string]any) *store.AuditEvent {
		b, _ := json.Marshal(details)
		now := time.Now()
		return &store.AuditEvent{ID: airlock.NewID(airlock.PrefixEvent, now), Time: now, Type: typ, ActorID: actorID, ActorName: actor,
			Subject: subject, Outcome: "success", Details: b}
	}
	events := []*store.AuditEvent{
		ev("user.create", "usr_bob", "bob", "usr_bobby", map[string]any{"username": "bobby"}),
		ev("group.member_add", "usr_bob", "bob", "grp_sec", map[string]any{"group": "security", "user_id": "usr_bobby", "username": "bobby"}),
		ev("user.create", "", "system", "usr_admin", map[string]any{"username": "admin"}),
		ev("user.create", "", "demo", "usr_alice", map[string]any{"username": "alice"}),
		ev("group.member_add", "usr_alice", "alice", "grp_dev", map[string]any{"group": "dev", "user_id": "usr_alice", "username": "alice", "source": "sso"}),
	}
	if err := old.Update(ctx, func(tx store.Tx) error {
		for _, e := range events {
			if err := tx.AuditAppend(ctx, e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s := reopen(t)
	ls, err := s.AccountLinks(ctx, "usr_bob")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range ls {
		got = append(got, l.UserID+" "+l.Reason+" "+l.EventID)
	}
	want := []string{"usr_bobby created by bob " + events[0].ID, "usr_bobby granted security by bob " + events[1].ID}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("links after the upgrade:\n%v\nwant:\n%v", got, want)
	}
	for _, u := range []string{"usr_admin", "usr_alice"} {
		if ls, _ := s.AccountLinks(ctx, u); len(ls) != 0 {
			t.Errorf("%s is linked: %+v", u, ls[0])
		}
	}
}
