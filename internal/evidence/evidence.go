// Package evidence exports and verifies evidence bundles: a zip an
// auditor can check offline with only the log's public key. A bundle
// holds the audit events of a period with inclusion proofs against a
// signed checkpoint, the runs with their output, the procedure versions
// with their reviews, the policies in force, a summary per control and
// a human-readable report, and a signed manifest of every file's hash.
// It also checks a database's stored run output against the digests its
// log certifies (CheckOutput, for audit verify): the same rule the
// bundle check applies, in output.go.
package evidence

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/store"
)

// Format names the bundle layout.
const Format = "airlock-evidence/v1"

// Manifest lists the bundle's files with their SHA-256; it is signed.
type Manifest struct {
	Format      string            `json:"format"`
	CreatedAt   time.Time         `json:"created_at"`
	From        time.Time         `json:"from"`
	To          time.Time         `json:"to"`
	Procedure   string            `json:"procedure,omitempty"`
	Environment string            `json:"environment,omitempty"`
	Run         string            `json:"run,omitempty"`
	Checkpoint  string            `json:"checkpoint"` // the signed note
	Files       map[string]string `json:"files"`      // name -> sha256 hex
}

// Proofs holds an inclusion proof for every included event.
type Proofs struct {
	Size   int64               `json:"size"`
	Root   string              `json:"root"`
	Proofs map[string][]string `json:"proofs"` // seq -> base64 hashes
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// manifestNote signs the manifest: the note text is the manifest's
// SHA-256, so the manifest itself stays readable JSON.
func manifestNote(manifest []byte, signer note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: "airlock evidence manifest\n" + sum(manifest) + "\n"}, signer)
}

// writeBundle writes files, the manifest and its signature as a zip.
func writeBundle(w io.Writer, files map[string][]byte, m *Manifest, signer note.Signer) error {
	m.Files = map[string]string{}
	names := make([]string, 0, len(files))
	for n, b := range files {
		m.Files[n] = sum(b)
		names = append(names, n)
	}
	sort.Strings(names)
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	sig, err := manifestNote(mb, signer)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	put := func(name string, b []byte) error {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: m.CreatedAt})
		if err != nil {
			return err
		}
		_, err = f.Write(b)
		return err
	}
	for _, n := range names {
		if err := put(n, files[n]); err != nil {
			return err
		}
	}
	if err := put("manifest.json", mb); err != nil {
		return err
	}
	if err := put("manifest.sig", sig); err != nil {
		return err
	}
	return zw.Close()
}

// Problem is one failed check of a bundle.
type Problem struct {
	File   string `json:"file"`
	Detail string `json:"detail"`
}

// Result is what Verify found.
type Result struct {
	Events   int       `json:"events"`
	Runs     int       `json:"runs"`
	Size     int64     `json:"checkpoint_size"`
	Problems []Problem `json:"problems"`
}

// OK reports whether the bundle verified.
func (r *Result) OK() bool { return len(r.Problems) == 0 }

// Verify checks a bundle offline with the verifier key: the manifest's
// signature, every file's hash (an edited, missing or added file is
// named), the checkpoint's signature, every event's inclusion proof, and
// every run's output against the digest its run.finish event certifies:
// output that differs, or is gone with no run.output_prune event in the
// bundle to account for it, is a problem naming the run.
func Verify(zipData []byte, vkey string) (*Result, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if err != nil {
		return nil, fmt.Errorf("not a bundle: %w", err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(rc, 1<<30))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		files[f.Name] = b
	}
	res := &Result{Problems: []Problem{}}
	bad := func(file, format string, args ...any) {
		res.Problems = append(res.Problems, Problem{File: file, Detail: fmt.Sprintf(format, args...)})
	}
	mb, sig := files["manifest.json"], files["manifest.sig"]
	n, err := note.Open(sig, note.VerifierList(v))
	if err != nil {
		bad("manifest.sig", "signature does not verify with the key: %v", err)
		return res, nil
	}
	if !strings.Contains(n.Text, sum(mb)) {
		bad("manifest.json", "edited: its hash is not the signed one")
		return res, nil
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil || m.Format != Format {
		bad("manifest.json", "not a %s manifest", Format)
		return res, nil
	}
	for name, want := range m.Files {
		b, ok := files[name]
		switch {
		case !ok:
			bad(name, "missing from the bundle")
		case sum(b) != want:
			bad(name, "edited: its SHA-256 is not the one in the signed manifest")
		}
	}
	for name := range files {
		if _, ok := m.Files[name]; !ok && name != "manifest.json" && name != "manifest.sig" {
			bad(name, "not listed in the signed manifest: added")
		}
	}
	if len(res.Problems) > 0 {
		return res, nil
	}
	_, size, root, err := audit.OpenCheckpoint(m.Checkpoint, v)
	if err != nil {
		bad("manifest.json", "checkpoint: %v", err)
		return res, nil
	}
	res.Size = size
	var proofs Proofs
	if err := json.Unmarshal(files["proofs.json"], &proofs); err != nil {
		bad("proofs.json", "%v", err)
		return res, nil
	}
	events, err := readEvents(files["events.jsonl"])
	if err != nil {
		bad("events.jsonl", "%v", err)
		return res, nil
	}
	for _, e := range events {
		var rp tlog.RecordProof
		for _, s := range proofs.Proofs[fmt.Sprint(e.Seq)] {
			h, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(h) != tlog.HashSize {
				bad("proofs.json", "proof of event %d is malformed", e.Seq)
				continue
			}
			var hh tlog.Hash
			copy(hh[:], h)
			rp = append(rp, hh)
		}
		if err := tlog.CheckRecord(rp, size, root, e.Seq, tlog.RecordHash(e.Leaf())); err != nil {
			bad("events.jsonl", "event %d is not in the signed log: %v", e.Seq, err)
		}
	}
	res.Events = len(events)
	var runs []RunRecord
	if err := json.Unmarshal(files["runs.json"], &runs); err != nil {
		bad("runs.json", "%v", err)
		return res, nil
	}
	// What the proven events say of the runs' output.
	l := newLedger()
	for _, e := range events {
		l.add(e)
	}
	for _, r := range runs {
		res.Runs++
		if r.OutputDigest == "" {
			continue
		}
		c, ok := l.finished[r.ID]
		if ok && c.digest != r.OutputDigest {
			bad("runs.json", "run %s: output digest differs from its audited run.finish event", r.ID)
		}
		if !ok {
			c = certified{seq: -1, at: r.FinishedAt, digest: r.OutputDigest, bytes: r.OutputBytes, hasBytes: true}
		}
		name := "output/" + r.ID + ".log"
		out, ok := files[name]
		switch {
		case r.OutputPruned && len(out) == 0 && l.prunedBy(r.ID, c) < 0:
			bad(name, "run %s: its output is labelled pruned, but no run.output_prune event in the bundle names it", r.ID)
		case r.OutputPruned && len(out) == 0:
		case !ok:
			bad(name, "missing")
		default:
			if f := l.judge(r.ID, c, sumOutput(out)); f != "" {
				bad(name, "%s", f)
			}
		}
	}
	return res, nil
}

// EventRecord is an audit event as a bundle holds it: every stored
// column, details as the stored text, so the leaf can be rebuilt exactly.
type EventRecord struct {
	Seq        int64  `json:"seq"`
	ID         string `json:"id"`
	TimeUS     int64  `json:"time_us"`
	Type       string `json:"type"`
	ActorID    string `json:"actor_id"`
	ActorName  string `json:"actor_name"`
	Subject    string `json:"subject"`
	Outcome    string `json:"outcome"`
	RequestID  string `json:"request_id"`
	SourceAddr string `json:"source_addr"`
	Details    string `json:"details"`
}

func eventRecord(e *store.AuditEvent) EventRecord {
	return EventRecord{Seq: e.Seq, ID: e.ID, TimeUS: e.Time.UnixMicro(), Type: e.Type, ActorID: e.ActorID, ActorName: e.ActorName,
		Subject: e.Subject, Outcome: e.Outcome, RequestID: e.RequestID, SourceAddr: e.SourceAddr, Details: string(e.Details)}
}

func (r EventRecord) event() *store.AuditEvent {
	return &store.AuditEvent{Seq: r.Seq, ID: r.ID, Time: time.UnixMicro(r.TimeUS).UTC(), Type: r.Type, ActorID: r.ActorID,
		ActorName: r.ActorName, Subject: r.Subject, Outcome: r.Outcome, RequestID: r.RequestID, SourceAddr: r.SourceAddr,
		Details: []byte(r.Details)}
}

func readEvents(b []byte) ([]*store.AuditEvent, error) {
	var out []*store.AuditEvent
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var r EventRecord
		if err := dec.Decode(&r); err != nil {
			return nil, err
		}
		out = append(out, r.event())
	}
	return out, nil
}
