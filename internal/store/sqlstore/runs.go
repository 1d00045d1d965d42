package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("sqlstore: marshal: " + err.Error())
	}
	return string(b)
}

const nodeCols = `name, address, port, ssh_user, environment, tags, attributes, host_key, credential, transport, source, created_at, updated_at`

func scanNode(sc interface{ Scan(...any) error }) (*store.Node, error) {
	var n store.Node
	var tags, attrs string
	var created, updated sql.NullInt64
	if err := sc.Scan(&n.Name, &n.Address, &n.Port, &n.User, &n.Environment, &tags, &attrs, &n.HostKey, &n.Credential,
		&n.Transport, &n.Source, &created, &updated); err != nil {
		return nil, err
	}
	n.CreatedAt, n.UpdatedAt = fromMicros(created), fromMicros(updated)
	if err := json.Unmarshal([]byte(tags), &n.Tags); err != nil {
		return nil, err
	}
	return &n, json.Unmarshal([]byte(attrs), &n.Attributes)
}

func (q queries) NodeGet(ctx context.Context, name string) (*store.Node, error) {
	n, err := scanNode(q.row(ctx, `SELECT `+nodeCols+` FROM nodes WHERE name = ?`, name))
	return n, notFound("node", err)
}

func (q queries) NodesNamed(ctx context.Context, names []string) (map[string]*store.Node, error) {
	out := make(map[string]*store.Node, len(names))
	err := inChunks(len(names), 256, func(lo, hi int) error {
		args := make([]any, hi-lo)
		for i, name := range names[lo:hi] {
			args[i] = name
		}
		ns, err := list(ctx, q, scanNode, `SELECT `+nodeCols+` FROM nodes WHERE name IN (?`+strings.Repeat(",?", hi-lo-1)+`)`, args...)
		for _, nd := range ns {
			out[nd.Name] = nd
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (q queries) NodeList(ctx context.Context) ([]*store.Node, error) {
	return list(ctx, q, scanNode, `SELECT `+nodeCols+` FROM nodes ORDER BY name`)
}

func (tx *Tx) NodeUpsert(ctx context.Context, n *store.Node) error {
	tags, attrs := n.Tags, n.Attributes
	if tags == nil {
		tags = []string{}
	}
	if attrs == nil {
		attrs = map[string]string{}
	}
	_, err := tx.change(ctx, `INSERT INTO nodes (`+nodeCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (name) DO UPDATE SET address = excluded.address, port = excluded.port, ssh_user = excluded.ssh_user,
		environment = excluded.environment, tags = excluded.tags, attributes = excluded.attributes, host_key = excluded.host_key,
		credential = excluded.credential, transport = excluded.transport, source = excluded.source, updated_at = excluded.updated_at`,
		n.Name, n.Address, n.Port, n.User, n.Environment, jsonText(tags), jsonText(attrs), n.HostKey, n.Credential, n.Transport,
		n.Source, micros(n.CreatedAt), micros(n.UpdatedAt))
	return err
}

func (tx *Tx) NodeDelete(ctx context.Context, name string) error {
	res, err := tx.change(ctx, `DELETE FROM nodes WHERE name = ?`, name)
	if err != nil {
		return err
	}
	return expectOne(res, "node")
}

const secretCols = `name, ciphertext, key_id, created_at, updated_at, updated_by, scope_teams, scope_procedures, scope_updated_at, scope_updated_by`

func scanSecret(sc interface{ Scan(...any) error }) (*store.SecretRecord, error) {
	var r store.SecretRecord
	var created, updated, scoped sql.NullInt64
	var teams, procs string
	if err := sc.Scan(&r.Name, &r.Ciphertext, &r.KeyID, &created, &updated, &r.UpdatedBy, &teams, &procs, &scoped, &r.ScopeUpdatedBy); err != nil {
		return nil, err
	}
	r.CreatedAt, r.UpdatedAt, r.ScopeUpdatedAt = fromMicros(created), fromMicros(updated), fromMicros(scoped)
	if err := json.Unmarshal([]byte(teams), &r.ScopeTeams); err != nil {
		return nil, err
	}
	return &r, json.Unmarshal([]byte(procs), &r.ScopeProcedures)
}

func (q queries) SecretGet(ctx context.Context, name string) (*store.SecretRecord, error) {
	r, err := scanSecret(q.row(ctx, `SELECT `+secretCols+` FROM secrets WHERE name = ?`, name))
	return r, notFound("secret", err)
}

func (q queries) SecretList(ctx context.Context) ([]*store.SecretRecord, error) {
	return list(ctx, q, scanSecret, `SELECT `+secretCols+` FROM secrets ORDER BY name`)
}

func (tx *Tx) SecretPut(ctx context.Context, r *store.SecretRecord) error {
	teams, procs := r.ScopeTeams, r.ScopeProcedures
	if teams == nil {
		teams = []string{}
	}
	if procs == nil {
		procs = []string{}
	}
	_, err := tx.change(ctx, `INSERT INTO secrets (`+secretCols+`) VALUES (?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (name) DO UPDATE SET ciphertext = excluded.ciphertext, key_id = excluded.key_id,
		updated_at = excluded.updated_at, updated_by = excluded.updated_by, scope_teams = excluded.scope_teams,
		scope_procedures = excluded.scope_procedures, scope_updated_at = excluded.scope_updated_at,
		scope_updated_by = excluded.scope_updated_by`,
		r.Name, r.Ciphertext, r.KeyID, micros(r.CreatedAt), micros(r.UpdatedAt), r.UpdatedBy, jsonText(teams), jsonText(procs),
		micros(r.ScopeUpdatedAt), r.ScopeUpdatedBy)
	return err
}

func (tx *Tx) SecretDelete(ctx context.Context, name string) error {
	res, err := tx.change(ctx, `DELETE FROM secrets WHERE name = ?`, name)
	if err != nil {
		return err
	}
	return expectOne(res, "secret")
}

const runCols = `id, procedure_id, procedure_name, version_id, digest, environment, params, secret_params, requester_id,
	requester_name, reason, ticket, status, targets, lock_key, approvals_required, binding, idempotent, idempotency_key,
	created_at, expires_at, queued_at, started_at, finished_at, heartbeat_at, worker_id, attempt, cancel_requested, error,
	output_bytes, output_truncated, output_digest, standing_id, try`

func scanRun(sc interface{ Scan(...any) error }) (*store.Run, error) {
	var r store.Run
	var params, targets string
	var created, expires, queued, started, finished, heartbeat sql.NullInt64
	if err := sc.Scan(&r.ID, &r.ProcedureID, &r.ProcedureName, &r.VersionID, &r.Digest, &r.Environment, &params, &r.SecretParams,
		&r.RequesterID, &r.RequesterName, &r.Reason, &r.Ticket, &r.Status, &targets, &r.LockKey, &r.ApprovalsRequired, &r.Binding,
		&r.Idempotent, &r.IdempotencyKey, &created, &expires, &queued, &started, &finished, &heartbeat, &r.WorkerID, &r.Attempt,
		&r.CancelRequested, &r.Error, &r.OutputBytes, &r.OutputTruncated, &r.OutputDigest, &r.StandingID, &r.Try); err != nil {
		return nil, err
	}
	r.Params = []byte(params)
	r.CreatedAt, r.ExpiresAt, r.QueuedAt = fromMicros(created), fromMicros(expires), fromMicros(queued)
	r.StartedAt, r.FinishedAt, r.HeartbeatAt = fromMicros(started), fromMicros(finished), fromMicros(heartbeat)
	return &r, json.Unmarshal([]byte(targets), &r.Targets)
}

func (q queries) RunGet(ctx context.Context, id string) (*store.Run, error) {
	r, err := scanRun(q.row(ctx, `SELECT `+runCols+` FROM runs WHERE id = ?`, id))
	return r, notFound("run", err)
}

func (q queries) RunState(ctx context.Context, id string) (*store.RunState, error) {
	var st store.RunState
	err := q.row(ctx, `SELECT status, error, approvals_required FROM runs WHERE id = ?`, id).Scan(&st.Status, &st.Error, &st.ApprovalsRequired)
	if err != nil {
		return nil, notFound("run", err)
	}
	return &st, nil
}

func (q queries) RunGetByIdempotencyKey(ctx context.Context, requesterID, key string) (*store.Run, error) {
	// "idempotency_key <> ''" lets the planner use the partial unique
	// index (it cannot prove a bound parameter non-empty): without it,
	// every keyed request scanned the whole runs table.
	r, err := scanRun(q.row(ctx, `SELECT `+runCols+` FROM runs WHERE requester_id = ? AND idempotency_key = ? AND idempotency_key <> ''`, requesterID, key))
	return r, notFound("run", err)
}

func (q queries) RunQueued(ctx context.Context) (bool, error) {
	var n int
	err := q.row(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE status = 'queued' LIMIT 1) q`).Scan(&n)
	return n > 0, err
}

func (q queries) RunList(ctx context.Context, p store.RunListParams) ([]*store.Run, error) {
	s, args := `SELECT `+runCols+` FROM runs WHERE 1 = 1`, []any{}
	if p.Status != "" {
		s += ` AND status = ?`
		args = append(args, p.Status)
	}
	if p.ProcedureName != "" {
		s += ` AND procedure_name = ?`
		args = append(args, p.ProcedureName)
	}
	if p.RequesterID != "" {
		s += ` AND requester_id = ?`
		args = append(args, p.RequesterID)
	}
	if !p.HeartbeatBefore.IsZero() {
		s += ` AND status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < ?)`
		args = append(args, micros(p.HeartbeatBefore))
	}
	if p.Limit <= 0 {
		p.Limit = 100
	}
	return list(ctx, q, scanRun, s+` ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, p.Limit)...)
}

func (tx *Tx) RunInsert(ctx context.Context, r *store.Run) error {
	targets := r.Targets
	if targets == nil {
		targets = []string{}
	}
	_, err := tx.change(ctx, `INSERT INTO runs (`+runCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.ID, r.ProcedureID, r.ProcedureName, r.VersionID, r.Digest, r.Environment, string(r.Params), r.SecretParams,
		r.RequesterID, r.RequesterName, r.Reason, r.Ticket, r.Status, jsonText(targets), r.LockKey, r.ApprovalsRequired, r.Binding,
		r.Idempotent, r.IdempotencyKey, micros(r.CreatedAt), micros(r.ExpiresAt), micros(r.QueuedAt), micros(r.StartedAt),
		micros(r.FinishedAt), micros(r.HeartbeatAt), r.WorkerID, r.Attempt, r.CancelRequested, r.Error, r.OutputBytes,
		r.OutputTruncated, r.OutputDigest, r.StandingID, r.Try)
	return err
}

func (tx *Tx) RunUpdate(ctx context.Context, r *store.Run) error {
	res, err := tx.change(ctx, `UPDATE runs SET status = ?, secret_params = ?, expires_at = ?, queued_at = ?, started_at = ?,
		finished_at = ?, heartbeat_at = ?, worker_id = ?, attempt = ?, cancel_requested = ?, error = ?, output_bytes = ?,
		output_truncated = ?, output_digest = ? WHERE id = ?`,
		r.Status, r.SecretParams, micros(r.ExpiresAt), micros(r.QueuedAt), micros(r.StartedAt), micros(r.FinishedAt),
		micros(r.HeartbeatAt), r.WorkerID, r.Attempt, r.CancelRequested, r.Error, r.OutputBytes, r.OutputTruncated, r.OutputDigest, r.ID)
	if err != nil {
		return err
	}
	return expectOne(res, "run")
}

// RunClaim takes the oldest queued run whose lock is free. Runs whose
// lock another run holds are left out in SQL, so no number of them can
// hide a claimable run behind them. Write transactions are serialized
// (Dialect.SerializeWrites, SQLite's one writer), so the candidates stay
// claimable until this transaction commits; the lock row is still
// inserted with ON CONFLICT DO NOTHING and the claim is an UPDATE guarded
// by status = 'queued', so a claim stays exclusive even without that.
// Candidates sharing one free lock: the first takes it, the rest are
// skipped.
func (tx *Tx) RunClaim(ctx context.Context, workerID string, at time.Time) (*store.Run, error) {
	rows, err := tx.query(ctx, `SELECT id, lock_key FROM runs r WHERE status = 'queued'
		AND (lock_key = '' OR NOT EXISTS (SELECT 1 FROM run_locks l WHERE l.lock_key = r.lock_key))
		ORDER BY queued_at, id LIMIT 8`)
	if err != nil {
		return nil, err
	}
	type cand struct{ id, lock string }
	var cands []cand
	for rows.Next() {
		var c cand
		if err := rows.Scan(&c.id, &c.lock); err != nil {
			rows.Close()
			return nil, err
		}
		cands = append(cands, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, c := range cands {
		if c.lock != "" {
			// Not counted as a change on its own: the claim below is.
			res, err := tx.exec(ctx, `INSERT INTO run_locks (lock_key, run_id) VALUES (?, ?) ON CONFLICT (lock_key) DO NOTHING`, c.lock, c.id)
			if err != nil {
				return nil, err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue // another run holds the lock
			}
		}
		res, err := tx.change(ctx, `UPDATE runs SET status = 'running', worker_id = ?, started_at = ?, heartbeat_at = ?,
			attempt = attempt + 1 WHERE id = ? AND status = 'queued'`, workerID, micros(at), micros(at), c.id)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if c.lock != "" {
				if _, err := tx.exec(ctx, `DELETE FROM run_locks WHERE lock_key = ? AND run_id = ?`, c.lock, c.id); err != nil {
					return nil, err
				}
			}
			continue
		}
		return tx.RunGet(ctx, c.id)
	}
	return nil, nil
}

func (tx *Tx) RunLockRelease(ctx context.Context, runID string) error {
	_, err := tx.change(ctx, `DELETE FROM run_locks WHERE run_id = ?`, runID)
	return err
}

func (db *DB) RunHeartbeat(ctx context.Context, workerID string, runIDs []string, at time.Time) error {
	if len(runIDs) == 0 {
		return nil
	}
	args := []any{micros(at), workerID}
	for _, id := range runIDs {
		args = append(args, id)
	}
	w := queries{q: db.writer, d: &db.dialect, cache: db.writes}
	_, err := w.exec(ctx, `UPDATE runs SET heartbeat_at = ? WHERE worker_id = ? AND status = 'running' AND id IN (?`+
		strings.Repeat(",?", len(runIDs)-1)+`)`, args...)
	return err
}

func (q queries) RunApprovalList(ctx context.Context, runID string) ([]*store.RunApproval, error) {
	return list(ctx, q, func(sc interface{ Scan(...any) error }) (*store.RunApproval, error) {
		var a store.RunApproval
		var created sql.NullInt64
		err := sc.Scan(&a.ID, &a.RunID, &a.ApproverID, &a.ApproverName, &a.Decision, &a.Comment, &a.Binding, &created)
		a.CreatedAt = fromMicros(created)
		return &a, err
	}, `SELECT id, run_id, approver_id, approver_name, decision, comment, binding, created_at
		FROM run_approvals WHERE run_id = ? ORDER BY created_at, id`, runID)
}

func (tx *Tx) RunApprovalInsert(ctx context.Context, a *store.RunApproval) error {
	_, err := tx.change(ctx, `INSERT INTO run_approvals (id, run_id, approver_id, approver_name, decision, comment, binding, created_at)
		VALUES (?,?,?,?,?,?,?,?)`, a.ID, a.RunID, a.ApproverID, a.ApproverName, a.Decision, a.Comment, a.Binding, micros(a.CreatedAt))
	return err
}

func (q queries) RunNodeList(ctx context.Context, runID string) ([]*store.RunNode, error) {
	return list(ctx, q, func(sc interface{ Scan(...any) error }) (*store.RunNode, error) {
		var n store.RunNode
		var started, finished sql.NullInt64
		err := sc.Scan(&n.RunID, &n.Node, &n.Status, &n.ExitCode, &n.Error, &started, &finished)
		n.StartedAt, n.FinishedAt = fromMicros(started), fromMicros(finished)
		return &n, err
	}, `SELECT run_id, node, status, exit_code, error, started_at, finished_at FROM run_nodes
		WHERE run_id = ? ORDER BY node`, runID)
}

func (tx *Tx) RunNodePut(ctx context.Context, n *store.RunNode) error {
	_, err := tx.change(ctx, `INSERT INTO run_nodes (run_id, node, status, exit_code, error, started_at, finished_at) VALUES (?,?,?,?,?,?,?)
		ON CONFLICT (run_id, node) DO UPDATE SET status = excluded.status, exit_code = excluded.exit_code, error = excluded.error,
		started_at = excluded.started_at, finished_at = excluded.finished_at`,
		n.RunID, n.Node, n.Status, n.ExitCode, n.Error, micros(n.StartedAt), micros(n.FinishedAt))
	return err
}

func (q queries) RunStepList(ctx context.Context, runID string) ([]*store.RunStep, error) {
	return list(ctx, q, func(sc interface{ Scan(...any) error }) (*store.RunStep, error) {
		var s store.RunStep
		var started, finished sql.NullInt64
		err := sc.Scan(&s.RunID, &s.Attempt, &s.Node, &s.Index, &s.Step, &s.Status, &s.ExitCode, &started, &finished)
		s.StartedAt, s.FinishedAt = fromMicros(started), fromMicros(finished)
		return &s, err
	}, `SELECT run_id, attempt, node, step_index, step, status, exit_code, started_at, finished_at FROM run_steps
		WHERE run_id = ? ORDER BY attempt, node, step_index`, runID)
}

func (tx *Tx) RunStepPut(ctx context.Context, s *store.RunStep) error {
	attempt := max(s.Attempt, 1)
	_, err := tx.change(ctx, `INSERT INTO run_steps (run_id, attempt, node, step_index, step, status, exit_code, started_at, finished_at)
		VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id, attempt, node, step_index) DO UPDATE SET status = excluded.status,
		exit_code = excluded.exit_code, started_at = excluded.started_at, finished_at = excluded.finished_at`,
		s.RunID, attempt, s.Node, s.Index, s.Step, s.Status, s.ExitCode, micros(s.StartedAt), micros(s.FinishedAt))
	return err
}

func (q queries) RunOutputList(ctx context.Context, runID string, after int64, limit int) ([]*store.OutputChunk, error) {
	if limit <= 0 {
		limit = 1000
	}
	return list(ctx, q, func(sc interface{ Scan(...any) error }) (*store.OutputChunk, error) {
		var c store.OutputChunk
		var created sql.NullInt64
		err := sc.Scan(&c.RunID, &c.Seq, &c.Attempt, &c.Node, &c.Stream, &c.Data, &created)
		c.CreatedAt = fromMicros(created)
		return &c, err
	}, `SELECT run_id, seq, attempt, node, stream, data, created_at FROM run_output
		WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`, runID, after, limit)
}

func (db *DB) RunOutputAppend(ctx context.Context, lease store.Lease, chunks []*store.OutputChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	// Output is not an audit event of its own (the run's final event
	// certifies its digest): written unaudited.
	return db.retry(ctx, func() error {
		return db.write(ctx, true, func(t store.Tx) error {
			tx := t.(*Tx)
			// The lease first: a worker that lost the run writes nothing
			// more, and the run cannot change hands before this commits.
			if err := tx.RunHeld(ctx, lease); err != nil {
				return err
			}
			return tx.RunOutputPut(ctx, lease, chunks)
		})
	})
}

func (tx *Tx) RunOutputPut(ctx context.Context, lease store.Lease, chunks []*store.OutputChunk) error {
	for _, c := range chunks {
		if _, err := tx.exec(ctx, `INSERT INTO run_output (run_id, seq, attempt, node, stream, data, created_at) VALUES (?,?,?,?,?,?,?)`,
			lease.RunID, c.Seq, lease.Attempt, c.Node, c.Stream, c.Data, micros(c.CreatedAt)); err != nil {
			return err
		}
	}
	return nil
}

func (tx *Tx) RunHeld(ctx context.Context, lease store.Lease) error {
	var status, worker string
	var attempt int
	err := tx.row(ctx, `SELECT status, worker_id, attempt FROM runs WHERE id = ?`+tx.d.ShareLock, lease.RunID).Scan(&status, &worker, &attempt)
	if err == nil && (status != store.RunRunning || worker != lease.WorkerID || attempt != lease.Attempt) {
		err = fmt.Errorf("%w: run %s is %s, attempt %d on %q", store.ErrLeaseLost, lease.RunID, status, attempt, worker)
	}
	return notFound("run", err)
}

func (tx *Tx) RunOutputPrune(ctx context.Context, finishedBefore time.Time, limit int) ([]string, int64, error) {
	ids, err := list(ctx, tx.queries, func(sc interface{ Scan(...any) error }) (string, error) {
		var id string
		return id, sc.Scan(&id)
	}, `SELECT id FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?
		AND EXISTS (SELECT 1 FROM run_output o WHERE o.run_id = runs.id) ORDER BY finished_at, id LIMIT ?`, micros(finishedBefore), limit)
	if err != nil || len(ids) == 0 {
		return nil, 0, err
	}
	var chunks int64
	for _, id := range ids {
		res, err := tx.change(ctx, `DELETE FROM run_output WHERE run_id = ?`, id)
		if err != nil {
			return nil, 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, 0, err
		}
		chunks += n
	}
	return ids, chunks, nil
}
