package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// RecordExport audits that actor took a bundle out: its period, scope
// and SHA-256, so an auditor can match a bundle in hand to its export.
func RecordExport(ctx context.Context, s store.Store, actor audit.Actor, p Params, bundle []byte) error {
	sum := sha256.Sum256(bundle)
	details := map[string]any{"from": p.From.UTC().Format(time.RFC3339), "to": p.To.UTC().Format(time.RFC3339),
		"sha256": hex.EncodeToString(sum[:]), "bytes": len(bundle)}
	if p.Procedure != "" {
		details["procedure"] = p.Procedure
	}
	if p.Environment != "" {
		details["environment"] = p.Environment
	}
	return s.Update(ctx, func(tx store.Tx) error {
		return tx.AuditAppend(ctx, audit.New(ctx, time.Now(), audit.EvidenceExport, actor, "evidence", audit.Success, details))
	})
}

// ParseTime reads RFC 3339 or a date; endOfDay moves a date to the next
// midnight.
func ParseTime(field, s string, endOfDay bool) (time.Time, error) {
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
