package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

const procedureCols = `id, name, owner, owner_fixed, active_version_id, retired_at, created_at, updated_at`

func scanProcedure(sc interface{ Scan(...any) error }) (*store.Procedure, error) {
	var p store.Procedure
	var retired, created, updated sql.NullInt64
	if err := sc.Scan(&p.ID, &p.Name, &p.Owner, &p.OwnerFixed, &p.ActiveVersionID, &retired, &created, &updated); err != nil {
		return nil, err
	}
	p.RetiredAt, p.CreatedAt, p.UpdatedAt = fromMicros(retired), fromMicros(created), fromMicros(updated)
	return &p, nil
}

func (q queries) ProcedureGetByName(ctx context.Context, name string) (*store.Procedure, error) {
	p, err := scanProcedure(q.row(ctx, `SELECT `+procedureCols+` FROM procedures WHERE name = ?`, name))
	return p, notFound("procedure", err)
}

func (q queries) ProcedureGetByID(ctx context.Context, id string) (*store.Procedure, error) {
	p, err := scanProcedure(q.row(ctx, `SELECT `+procedureCols+` FROM procedures WHERE id = ?`, id))
	return p, notFound("procedure", err)
}

func (q queries) ProcedureList(ctx context.Context) ([]*store.Procedure, error) {
	return list(ctx, q, scanProcedure, `SELECT `+procedureCols+` FROM procedures ORDER BY name`)
}

func (tx *Tx) ProcedureInsert(ctx context.Context, p *store.Procedure) error {
	_, err := tx.change(ctx, `INSERT INTO procedures (`+procedureCols+`) VALUES (?,?,?,?,?,?,?,?)`,
		p.ID, p.Name, p.Owner, p.OwnerFixed, p.ActiveVersionID, micros(p.RetiredAt), micros(p.CreatedAt), micros(p.UpdatedAt))
	return err
}

func (tx *Tx) ProcedureUpdate(ctx context.Context, p *store.Procedure) error {
	res, err := tx.change(ctx, `UPDATE procedures SET owner = ?, owner_fixed = ?, active_version_id = ?, retired_at = ?, updated_at = ?
		WHERE id = ?`, p.Owner, p.OwnerFixed, p.ActiveVersionID, micros(p.RetiredAt), micros(p.UpdatedAt), p.ID)
	if err != nil {
		return err
	}
	return expectOne(res, "procedure")
}

const versionCols = `v.id, v.procedure_id, p.name, v.number, v.digest, v.definition, v.risk, v.status, v.author_id,
	v.author_name, v.source_file, v.created_at, v.decided_at`

func scanVersion(sc interface{ Scan(...any) error }) (*store.ProcedureVersion, error) {
	var v store.ProcedureVersion
	var def string
	var created, decided sql.NullInt64
	if err := sc.Scan(&v.ID, &v.ProcedureID, &v.ProcedureName, &v.Number, &v.Digest, &def, &v.Risk, &v.Status,
		&v.AuthorID, &v.AuthorName, &v.SourceFile, &created, &decided); err != nil {
		return nil, err
	}
	v.Definition = []byte(def)
	v.CreatedAt, v.DecidedAt = fromMicros(created), fromMicros(decided)
	return &v, nil
}

func (q queries) ProcedureVersionGet(ctx context.Context, id string) (*store.ProcedureVersion, error) {
	v, err := scanVersion(q.row(ctx, `SELECT `+versionCols+` FROM procedure_versions v
		JOIN procedures p ON p.id = v.procedure_id WHERE v.id = ?`, id))
	return v, notFound("procedure version", err)
}

func (q queries) ProcedureVersionList(ctx context.Context, f store.ProcedureVersionListParams) ([]*store.ProcedureVersion, error) {
	s := `SELECT ` + versionCols + ` FROM procedure_versions v JOIN procedures p ON p.id = v.procedure_id WHERE 1 = 1`
	var args []any
	if f.ProcedureID != "" {
		s += ` AND v.procedure_id = ?`
		args = append(args, f.ProcedureID)
	}
	if f.Status != "" {
		s += ` AND v.status = ?`
		args = append(args, f.Status)
	}
	return list(ctx, q, scanVersion, s+` ORDER BY v.created_at, v.number`, args...)
}

func (tx *Tx) ProcedureVersionInsert(ctx context.Context, v *store.ProcedureVersion) error {
	_, err := tx.change(ctx, `INSERT INTO procedure_versions (id, procedure_id, number, digest, definition, risk, status,
		author_id, author_name, source_file, created_at, decided_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		v.ID, v.ProcedureID, v.Number, v.Digest, string(v.Definition), v.Risk, v.Status, v.AuthorID, v.AuthorName,
		v.SourceFile, micros(v.CreatedAt), micros(v.DecidedAt))
	return err
}

func (tx *Tx) ProcedureVersionSetStatus(ctx context.Context, id, status string, decidedAt time.Time) error {
	res, err := tx.change(ctx, `UPDATE procedure_versions SET status = ?, decided_at = ? WHERE id = ?`, status, micros(decidedAt), id)
	if err != nil {
		return err
	}
	return expectOne(res, "procedure version")
}

func (q queries) ReviewList(ctx context.Context, versionID string) ([]*store.Review, error) {
	return list(ctx, q, func(sc interface{ Scan(...any) error }) (*store.Review, error) {
		var r store.Review
		var groups string
		var created sql.NullInt64
		if err := sc.Scan(&r.ID, &r.VersionID, &r.Digest, &r.ReviewerID, &r.ReviewerName, &r.Decision, &r.Comment, &groups, &created); err != nil {
			return nil, err
		}
		r.CreatedAt = fromMicros(created)
		return &r, json.Unmarshal([]byte(groups), &r.ReviewerGroups)
	}, `SELECT id, version_id, digest, reviewer_id, reviewer_name, decision, comment, reviewer_groups, created_at
		FROM procedure_reviews WHERE version_id = ? ORDER BY created_at, id`, versionID)
}

func (tx *Tx) ReviewInsert(ctx context.Context, r *store.Review) error {
	groups, err := json.Marshal(r.ReviewerGroups)
	if err != nil {
		return err
	}
	if r.ReviewerGroups == nil {
		groups = []byte("[]")
	}
	_, err = tx.change(ctx, `INSERT INTO procedure_reviews (id, version_id, digest, reviewer_id, reviewer_name, decision, comment,
		reviewer_groups, created_at) VALUES (?,?,?,?,?,?,?,?,?)`,
		r.ID, r.VersionID, r.Digest, r.ReviewerID, r.ReviewerName, r.Decision, r.Comment, string(groups), micros(r.CreatedAt))
	return err
}
