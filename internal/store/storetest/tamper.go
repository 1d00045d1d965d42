package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// testAuditTamper appends 600 events (two complete blocks of the
// verifier's block-level check, and a tail it reads leaf by leaf) and
// signs a checkpoint, then has someone with database access change one
// byte of an event, delete one, insert one, swap two, and truncate the
// tail; audit.Verify must report each, naming the position.
func testAuditTamper(t *testing.T, h Harness) {
	skey, vkey, err := audit.GenerateKey("airlock-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	ctx := context.Background()
	const total = 600
	setup := func(t *testing.T) store.Store {
		s, _ := h.New(t)
		err := s.Update(ctx, func(tx store.Tx) error {
			for i := range total {
				if err := tx.AuditAppend(ctx, event("test.append", fmt.Sprintf("subject-%d", i))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := audit.Sign(ctx, s, signer, "airlock-test", t0); err != nil {
			t.Fatal(err)
		}
		rep, err := audit.Verify(ctx, s, verifier, nil)
		if err != nil || !rep.OK() || rep.Events != total || rep.Checkpoints != 1 {
			t.Fatalf("untouched log: %+v %v", rep, err)
		}
		h.DisableAppendOnly(t, s)
		return s
	}
	cases := []struct {
		name string
		sql  []string
		want []string // "position N: kind"
	}{
		{"edit one byte", []string{`UPDATE audit_events SET subject = 'subject-X' WHERE seq = 7`},
			[]string{"position 7: edited", "position 7: checkpoint"}},
		{"delete one", []string{`DELETE FROM audit_events WHERE seq = 11`},
			[]string{"position 11: missing", "position 11: checkpoint"}},
		{"insert one near the end", []string{
			`UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 590`,
			`UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1590`,
			`INSERT INTO audit_events (seq, id, time, type, subject) VALUES (590, 'evt_forged', 0, 'user.create', 'usr_mallory')`,
			`UPDATE audit_head SET size = size + 1`},
			[]string{"position 590: edited", "position 600: unhashed"}},
		// Early, every later position differs: the first 100 are named,
		// the rest counted.
		{"insert one early", []string{
			`UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 5`,
			`UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1005`,
			`INSERT INTO audit_events (seq, id, time, type, subject) VALUES (5, 'evt_forged', 0, 'user.create', 'usr_mallory')`,
			`UPDATE audit_head SET size = size + 1`},
			[]string{"position 5: edited", "more: 497"}},
		{"edit in a later block and in the tail", []string{
			`UPDATE audit_events SET subject = 'subject-X' WHERE seq = 300`,
			`UPDATE audit_events SET type = 'x' WHERE seq = 590`},
			[]string{"position 300: edited", "position 590: edited"}},
		{"swap two", []string{
			`UPDATE audit_events SET seq = 1003 WHERE seq = 3`,
			`UPDATE audit_events SET seq = 3 WHERE seq = 4`,
			`UPDATE audit_events SET seq = 4 WHERE seq = 1003`},
			[]string{"position 3: edited", "position 4: edited"}},
		// Positions far away must be reported, not walked or held.
		{"forge an event far beyond the head", []string{
			`INSERT INTO audit_events (seq, id, time, type, subject) VALUES (1000000000000, 'evt_far', 0, 'user.create', 'usr_mallory')`},
			[]string{"position 1000000000000: unexpected"}},
		{"rewrite the head far ahead", []string{`UPDATE audit_head SET size = 1000000000000`},
			[]string{"position 600: missing", "position 600: truncated"}},
		{"truncate the tail, re-sign nothing", []string{
			`DELETE FROM audit_events WHERE seq >= 515`,
			`UPDATE audit_head SET size = 515`},
			[]string{"position 515: truncated"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := setup(t)
			for _, q := range c.sql {
				if err := h.Exec(t, s, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			rep, err := audit.Verify(ctx, s, verifier, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range rep.Problems {
				got = append(got, fmt.Sprintf("position %d: %s", p.Position, p.Kind))
			}
			got = append(got, fmt.Sprintf("more: %d", rep.Omitted))
			for _, w := range c.want {
				found := false
				for _, g := range got {
					found = found || g == w
				}
				if !found {
					t.Errorf("want %q among the findings:\n%s", w, strings.Join(got, "\n"))
				}
			}
			if rep.OK() {
				t.Fatal("tampering went undetected")
			}
		})
	}
	// A rewrite that also rewrites the stored hashes is still caught by
	// the signed checkpoint.
	t.Run("rewrite events and hashes", func(t *testing.T) {
		s := setup(t)
		if err := h.Exec(t, s, `UPDATE audit_events SET subject = 'rewritten' WHERE seq = 2`); err != nil {
			t.Fatal(err)
		}
		// Recompute the whole hash table for the rewritten log.
		evs, _ := s.AuditList(ctx, store.AuditListParams{After: -1, Limit: total})
		if err := h.Exec(t, s, `DELETE FROM audit_hashes`); err != nil {
			t.Fatal(err)
		}
		rehash(t, h, s, evs)
		rep, _ := audit.Verify(ctx, s, verifier, nil)
		if rep.OK() || rep.Problems[0].Kind != "checkpoint" || rep.Problems[0].Position != total-1 {
			t.Fatalf("consistent rewrite: %+v", rep.Problems)
		}
	})
}
