package api

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/identity"
	"github.com/airlockhq/airlock/internal/policy"
	"github.com/airlockhq/airlock/internal/store"
)

// CheckpointJSON is a signed tree head.
type CheckpointJSON struct {
	Size      int64     `json:"size"`
	RootHash  string    `json:"root_hash"`
	Note      string    `json:"note"`
	CreatedAt time.Time `json:"created_at"`
	// Key is the verifier key the note's signature checks with.
	Key string `json:"key"`
}

func (h *Handler) canReadAudit(r *http.Request) error {
	return h.Authz.CheckSystem(r.Context(), identity.PrincipalFrom(r.Context()), policy.ActionReadAudit)
}

func (h *Handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	if err := h.canReadAudit(r); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	c, err := h.Audit.Latest(r.Context())
	if err == nil && (c == nil || r.Method == http.MethodPost) {
		c, err = h.Audit.Checkpoint(r.Context())
	}
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, CheckpointJSON{Size: c.Size, RootHash: c.RootHash, Note: c.Note, CreatedAt: c.CreatedAt, Key: h.Audit.VerifierKey})
}

func (h *Handler) auditKey(w http.ResponseWriter, r *http.Request) {
	if err := h.canReadAudit(r); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"key": h.Audit.VerifierKey, "origin": h.Audit.Origin})
}

func (h *Handler) auditEvents(w http.ResponseWriter, r *http.Request) {
	if err := h.canReadAudit(r); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	q := r.URL.Query()
	after := int64(-1)
	if s := q.Get("after"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			writeError(w, r, h.Log, airlock.FieldError("after", "expected a position"))
			return
		}
		after = v
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	evs, err := h.Store.AuditList(r.Context(), store.AuditListParams{After: after, Limit: limit, Type: q.Get("type"), Actor: q.Get("actor"), Subject: q.Get("subject")})
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, ListResponse[AuditEventJSON]{Items: auditEventsJSON(evs)})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// b64s encodes a proof's hashes.
func b64s(hashes []tlog.Hash) []string {
	out := []string{}
	for _, h := range hashes {
		out = append(out, b64(h[:]))
	}
	return out
}

// InclusionProof proves an event is in the tree of a size.
type InclusionProof struct {
	Index    int64    `json:"index"`
	Size     int64    `json:"size"`
	LeafHash string   `json:"leaf_hash"`
	RootHash string   `json:"root_hash"`
	Proof    []string `json:"proof"`
}

func (h *Handler) parseSize(r *http.Request, name string, def int64) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, airlock.FieldError(name, "expected a non-negative integer")
	}
	return v, nil
}

func (h *Handler) inclusionProof(w http.ResponseWriter, r *http.Request) {
	out, err := h.proveInclusion(r)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) proveInclusion(r *http.Request) (*InclusionProof, error) {
	if err := h.canReadAudit(r); err != nil {
		return nil, err
	}
	ctx := r.Context()
	head, err := h.Store.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	index, err := h.parseSize(r, "index", -1)
	if err != nil {
		return nil, err
	}
	size, err := h.parseSize(r, "size", head)
	if err != nil {
		return nil, err
	}
	if index < 0 || index >= size || size > head {
		return nil, airlock.FieldError("index", "expected 0 ≤ index < size ≤ %d", head)
	}
	proof, leaf, err := h.Audit.InclusionProof(ctx, index, size)
	if err != nil {
		return nil, err
	}
	root, err := h.Audit.RootAt(ctx, size)
	if err != nil {
		return nil, err
	}
	return &InclusionProof{Index: index, Size: size, LeafHash: b64(leaf[:]), RootHash: b64(root[:]), Proof: b64s(proof)}, nil
}

// ConsistencyProof proves the tree of size Old is a prefix of New's.
type ConsistencyProof struct {
	Old     int64    `json:"old"`
	New     int64    `json:"new"`
	OldRoot string   `json:"old_root"`
	NewRoot string   `json:"new_root"`
	Proof   []string `json:"proof"`
}

func (h *Handler) consistencyProof(w http.ResponseWriter, r *http.Request) {
	if err := h.canReadAudit(r); err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	ctx := r.Context()
	head, err := h.Store.AuditSize(ctx)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	old, err := h.parseSize(r, "old", -1)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	nw, err := h.parseSize(r, "new", head)
	if err != nil || old < 1 || old > nw || nw > head {
		writeError(w, r, h.Log, airlock.FieldError("old", "expected 1 ≤ old ≤ new ≤ %d", head))
		return
	}
	proof, err := h.Audit.ConsistencyProof(ctx, old, nw)
	if err != nil {
		writeError(w, r, h.Log, err)
		return
	}
	or, _ := h.Audit.RootAt(ctx, old)
	nr, _ := h.Audit.RootAt(ctx, nw)
	writeJSON(w, http.StatusOK, ConsistencyProof{Old: old, New: nw, OldRoot: b64(or[:]), NewRoot: b64(nr[:]), Proof: b64s(proof)})
}
