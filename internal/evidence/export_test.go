package evidence_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/evidence"
	"github.com/airlockhq/airlock/internal/store"
	"github.com/airlockhq/airlock/internal/store/sqlite"
)

// TestExportIsDatedByItsClocks: the manifest and the export event take
// their time from Params.Now and the checkpoint from the log's Now, not
// from the wall clock; the dates are years away from any test run.
func TestExportIsDatedByItsClocks(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := s.Update(ctx, func(tx store.Tx) error {
		return tx.AuditAppend(ctx, audit.New(ctx, at, audit.NodePut, audit.System, "web-1", audit.Success, nil))
	}); err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := audit.GenerateKey("airlock-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	signedAt, exportedAt := at.Add(time.Minute), at.Add(2*time.Minute)
	log := &audit.Log{Store: s, Signer: signer, Verifier: verifier, VerifierKey: vkey, Origin: "airlock-test",
		Now: func() time.Time { return signedAt }}
	p := evidence.Params{From: at.Add(-time.Hour), To: at.Add(time.Hour), Now: func() time.Time { return exportedAt }}
	bundle, err := evidence.ExportAudited(ctx, s, log, audit.Actor{Name: "dana"}, p)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := evidence.Verify(bundle, vkey); err != nil || !res.OK() || res.Events != 1 {
		t.Fatalf("bundle: %v %+v", err, res)
	}
	var m evidence.Manifest
	if err := json.Unmarshal(zipFile(t, bundle, "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	if !m.CreatedAt.Equal(exportedAt) {
		t.Errorf("manifest created_at %v, want Params.Now's %v", m.CreatedAt, exportedAt)
	}
	if cp, err := log.Latest(ctx); err != nil || cp == nil || !cp.CreatedAt.Equal(signedAt) {
		t.Errorf("checkpoint %+v (%v), want it signed at the log's %v", cp, err, signedAt)
	}
	evs, err := s.AuditList(ctx, store.AuditListParams{After: -1, Type: audit.EvidenceExport})
	if err != nil || len(evs) != 1 || !evs[0].Time.Equal(exportedAt) {
		t.Fatalf("evidence.export events %+v (%v), want one at %v", evs, err, exportedAt)
	}
}

func zipFile(t *testing.T, bundle []byte, name string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := zr.Open(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}
