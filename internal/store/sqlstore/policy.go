package sqlstore

import (
	"context"
	"database/sql"

	"github.com/airlockhq/airlock/internal/store"
)

const policyCols = `id, number, digest, text, description, status, author_id, author_name, decided_by_id, decided_by_name,
	decision_comment, created_at, decided_at`

func scanPolicy(sc interface{ Scan(...any) error }) (*store.PolicyVersion, error) {
	var v store.PolicyVersion
	var created, decided sql.NullInt64
	if err := sc.Scan(&v.ID, &v.Number, &v.Digest, &v.Text, &v.Description, &v.Status, &v.AuthorID, &v.AuthorName,
		&v.DecidedByID, &v.DecidedByName, &v.DecisionComment, &created, &decided); err != nil {
		return nil, err
	}
	v.CreatedAt, v.DecidedAt = fromMicros(created), fromMicros(decided)
	return &v, nil
}

func (q queries) PolicyVersionGet(ctx context.Context, id string) (*store.PolicyVersion, error) {
	v, err := scanPolicy(q.row(ctx, `SELECT `+policyCols+` FROM policy_versions WHERE id = ?`, id))
	return v, notFound("policy version", err)
}

func (q queries) PolicyVersionList(ctx context.Context, status string) ([]*store.PolicyVersion, error) {
	s, args := `SELECT `+policyCols+` FROM policy_versions`, []any{}
	if status != "" {
		s += ` WHERE status = ?`
		args = append(args, status)
	}
	return list(ctx, q, scanPolicy, s+` ORDER BY number DESC`, args...)
}

func (tx *Tx) PolicyVersionInsert(ctx context.Context, v *store.PolicyVersion) error {
	_, err := tx.change(ctx, `INSERT INTO policy_versions (`+policyCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		v.ID, v.Number, v.Digest, v.Text, v.Description, v.Status, v.AuthorID, v.AuthorName, v.DecidedByID, v.DecidedByName,
		v.DecisionComment, micros(v.CreatedAt), micros(v.DecidedAt))
	return err
}

func (tx *Tx) PolicyVersionDecide(ctx context.Context, v *store.PolicyVersion) error {
	res, err := tx.change(ctx, `UPDATE policy_versions SET status = ?, decided_by_id = ?, decided_by_name = ?, decision_comment = ?,
		decided_at = ? WHERE id = ?`, v.Status, v.DecidedByID, v.DecidedByName, v.DecisionComment, micros(v.DecidedAt), v.ID)
	if err != nil {
		return err
	}
	return expectOne(res, "policy version")
}
