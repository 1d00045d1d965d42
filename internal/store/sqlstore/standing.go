package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

const standingCols = `id, kind, name, procedure_id, procedure_name, environment, params, spec, secret, version_id, digest, binding,
	targets, approvals_required, status, status_reason, proposer_id, proposer_name, account_id, account_name, cursor_at,
	proposed_at, created_at, updated_at`

func scanStanding(sc interface{ Scan(...any) error }) (*store.Standing, error) {
	var s store.Standing
	var params, spec, targets string
	var cursor, proposed, created, updated sql.NullInt64
	if err := sc.Scan(&s.ID, &s.Kind, &s.Name, &s.ProcedureID, &s.ProcedureName, &s.Environment, &params, &spec, &s.Secret,
		&s.VersionID, &s.Digest, &s.Binding, &targets, &s.ApprovalsRequired, &s.Status, &s.StatusReason, &s.ProposerID,
		&s.ProposerName, &s.AccountID, &s.AccountName, &cursor, &proposed, &created, &updated); err != nil {
		return nil, err
	}
	s.Params, s.Spec = []byte(params), []byte(spec)
	s.Cursor, s.ProposedAt, s.CreatedAt, s.UpdatedAt = fromMicros(cursor), fromMicros(proposed), fromMicros(created), fromMicros(updated)
	return &s, json.Unmarshal([]byte(targets), &s.Targets)
}

func (q queries) StandingGet(ctx context.Context, id string) (*store.Standing, error) {
	s, err := scanStanding(q.row(ctx, `SELECT `+standingCols+` FROM standing WHERE id = ?`, id))
	return s, notFound(standingWhat(""), err)
}

func (q queries) StandingGetByName(ctx context.Context, kind, name string) (*store.Standing, error) {
	s, err := scanStanding(q.row(ctx, `SELECT `+standingCols+` FROM standing WHERE kind = ? AND name = ? AND status <> 'deleted'`, kind, name))
	return s, notFound(standingWhat(kind), err)
}

func standingWhat(kind string) string {
	if kind == "" {
		return "schedule or trigger"
	}
	return kind
}

func (q queries) StandingList(ctx context.Context, kind, status string) ([]*store.Standing, error) {
	s, args := `SELECT `+standingCols+` FROM standing WHERE 1 = 1`, []any{}
	if kind != "" {
		s += ` AND kind = ?`
		args = append(args, kind)
	}
	if status != "" {
		s += ` AND status = ?`
		args = append(args, status)
	}
	return list(ctx, q, scanStanding, s+` ORDER BY name, created_at`, args...)
}

func orEmpty(b []byte, empty string) string {
	if len(b) == 0 {
		return empty
	}
	return string(b)
}

func (tx *Tx) StandingInsert(ctx context.Context, s *store.Standing) error {
	targets := s.Targets
	if targets == nil {
		targets = []string{}
	}
	_, err := tx.change(ctx, `INSERT INTO standing (`+standingCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		s.ID, s.Kind, s.Name, s.ProcedureID, s.ProcedureName, s.Environment, orEmpty(s.Params, "{}"), orEmpty(s.Spec, "{}"), s.Secret,
		s.VersionID, s.Digest, s.Binding, jsonText(targets), s.ApprovalsRequired, s.Status, s.StatusReason, s.ProposerID,
		s.ProposerName, s.AccountID, s.AccountName, micros(s.Cursor), micros(s.ProposedAt), micros(s.CreatedAt), micros(s.UpdatedAt))
	return err
}

func (tx *Tx) StandingUpdate(ctx context.Context, s *store.Standing) error {
	targets := s.Targets
	if targets == nil {
		targets = []string{}
	}
	res, err := tx.change(ctx, `UPDATE standing SET version_id = ?, digest = ?, binding = ?, targets = ?, approvals_required = ?,
		status = ?, status_reason = ?, cursor_at = ?, proposed_at = ?, updated_at = ? WHERE id = ?`,
		s.VersionID, s.Digest, s.Binding, jsonText(targets), s.ApprovalsRequired, s.Status, s.StatusReason, micros(s.Cursor),
		micros(s.ProposedAt), micros(s.UpdatedAt), s.ID)
	if err != nil {
		return err
	}
	return expectOne(res, standingWhat(s.Kind))
}

func scanStandingApproval(sc interface{ Scan(...any) error }) (*store.StandingApproval, error) {
	var a store.StandingApproval
	var created sql.NullInt64
	if err := sc.Scan(&a.ID, &a.StandingID, &a.ApproverID, &a.ApproverName, &a.Decision, &a.Comment, &a.Binding, &created); err != nil {
		return nil, err
	}
	a.CreatedAt = fromMicros(created)
	return &a, nil
}

func (q queries) StandingApprovalList(ctx context.Context, standingID string) ([]*store.StandingApproval, error) {
	return list(ctx, q, scanStandingApproval, `SELECT id, standing_id, approver_id, approver_name, decision, comment, binding, created_at
		FROM standing_approvals WHERE standing_id = ? ORDER BY created_at, id`, standingID)
}

func (tx *Tx) StandingApprovalInsert(ctx context.Context, a *store.StandingApproval) error {
	_, err := tx.change(ctx, `INSERT INTO standing_approvals (id, standing_id, approver_id, approver_name, decision, comment, binding, created_at)
		VALUES (?,?,?,?,?,?,?,?)`, a.ID, a.StandingID, a.ApproverID, a.ApproverName, a.Decision, a.Comment, a.Binding, micros(a.CreatedAt))
	return err
}

func scanStandingEvent(sc interface{ Scan(...any) error }) (*store.StandingEvent, error) {
	var e store.StandingEvent
	var at sql.NullInt64
	if err := sc.Scan(&e.StandingID, &e.Key, &at, &e.Outcome, &e.RunID, &e.Detail); err != nil {
		return nil, err
	}
	e.At = fromMicros(at)
	return &e, nil
}

func (q queries) StandingEventList(ctx context.Context, standingID string, limit int) ([]*store.StandingEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	return list(ctx, q, scanStandingEvent, `SELECT standing_id, event_key, at, outcome, run_id, detail FROM standing_events
		WHERE standing_id = ? ORDER BY at DESC, event_key DESC LIMIT ?`, standingID, limit)
}

func (q queries) StandingEventCount(ctx context.Context, standingID string, since time.Time) (int, error) {
	var n int
	err := q.row(ctx, `SELECT COUNT(*) FROM standing_events WHERE standing_id = ? AND at >= ?`, standingID, micros(since)).Scan(&n)
	return n, err
}

func (tx *Tx) StandingEventInsert(ctx context.Context, e *store.StandingEvent) error {
	_, err := tx.change(ctx, `INSERT INTO standing_events (standing_id, event_key, at, outcome, run_id, detail) VALUES (?,?,?,?,?,?)`,
		e.StandingID, e.Key, micros(e.At), e.Outcome, e.RunID, e.Detail)
	return err
}
