package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// NewParams reads a period and scope as a user gives them (API, form):
// times as RFC 3339 or dates (midnight UTC; "to" a date includes that
// day). A bad value names its field.
func NewParams(from, to, procedure, environment string) (Params, error) {
	f, err := parseTime("from", from, false)
	if err != nil {
		return Params{}, err
	}
	t, err := parseTime("to", to, true)
	if err != nil {
		return Params{}, err
	}
	if !t.After(f) {
		return Params{}, airlock.FieldError("to", "must be after from")
	}
	return Params{From: f, To: t, Procedure: procedure, Environment: environment}, nil
}

// RunParams scopes a bundle to one run, from its request until now by
// the clock now (nil for time.Now), which also dates the bundle.
func RunParams(r *store.Run, now func() time.Time) Params {
	p := Params{From: r.CreatedAt.Add(-time.Second), Procedure: r.ProcedureName, Run: r.ID, Now: now}
	p.To = p.now().Add(time.Second)
	return p
}

// FileName is the bundle's download name.
func (p Params) FileName() string {
	if p.Run != "" {
		return "airlock-evidence-" + p.Run + ".zip"
	}
	return fmt.Sprintf("airlock-evidence-%s-%s.zip", p.From.UTC().Format("20060102"), p.To.UTC().Format("20060102"))
}

// ExportAudited builds the bundle and audits that actor took it out: its
// period, scope and SHA-256, so an auditor can match a bundle in hand to
// its export. Authorization is the caller's.
func ExportAudited(ctx context.Context, s store.Store, log *audit.Log, actor audit.Actor, p Params) ([]byte, error) {
	var buf bytes.Buffer
	if err := Export(ctx, s, log, p, &buf); err != nil {
		return nil, err
	}
	bundle := buf.Bytes()
	sum := sha256.Sum256(bundle)
	details := map[string]any{"from": p.From.UTC().Format(time.RFC3339), "to": p.To.UTC().Format(time.RFC3339),
		"sha256": hex.EncodeToString(sum[:]), "bytes": len(bundle)}
	if p.Procedure != "" {
		details["procedure"] = p.Procedure
	}
	if p.Environment != "" {
		details["environment"] = p.Environment
	}
	if p.Run != "" {
		details["run"] = p.Run
	}
	err := s.Update(ctx, func(tx store.Tx) error {
		return tx.AuditAppend(ctx, audit.New(ctx, p.now(), audit.EvidenceExport, actor, "evidence", audit.Success, details))
	})
	if err != nil {
		return nil, err
	}
	return bundle, nil
}

func parseTime(field, s string, endOfDay bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, airlock.FieldError(field, "expected RFC 3339 (2026-11-27T09:00:00Z) or a date (2026-11-27), got %q", s)
	}
	if endOfDay {
		t = t.Add(24 * time.Hour)
	}
	return t, nil
}
