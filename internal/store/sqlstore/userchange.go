package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/airlockhq/airlock/internal/store"
)

const userChangeCols = `id, kind, username, group_name, display_name, email, groups, status, author_id, author_name, user_id,
	decided_by_id, decided_by_name, decision_comment, created_at, decided_at, account_kind, owner_team`

func scanUserChange(sc interface{ Scan(...any) error }) (*store.UserChange, error) {
	var c store.UserChange
	var groups string
	var created, decided sql.NullInt64
	if err := sc.Scan(&c.ID, &c.Kind, &c.Username, &c.Group, &c.DisplayName, &c.Email, &groups, &c.Status, &c.AuthorID,
		&c.AuthorName, &c.UserID, &c.DecidedByID, &c.DecidedByName, &c.DecisionComment, &created, &decided, &c.AccountKind, &c.OwnerTeam); err != nil {
		return nil, err
	}
	c.CreatedAt, c.DecidedAt = fromMicros(created), fromMicros(decided)
	return &c, json.Unmarshal([]byte(groups), &c.Groups)
}

func (q queries) UserChangeGet(ctx context.Context, id string) (*store.UserChange, error) {
	c, err := scanUserChange(q.row(ctx, `SELECT `+userChangeCols+` FROM user_changes WHERE id = ?`, id))
	return c, notFound("user change", err)
}

func (q queries) UserChangeList(ctx context.Context, status string) ([]*store.UserChange, error) {
	s, args := `SELECT `+userChangeCols+` FROM user_changes`, []any{}
	if status != "" {
		s += ` WHERE status = ?`
		args = append(args, status)
	}
	return list(ctx, q, scanUserChange, s+` ORDER BY created_at DESC, id DESC`, args...)
}

func (tx *Tx) UserChangeInsert(ctx context.Context, c *store.UserChange) error {
	groups := c.Groups
	if groups == nil {
		groups = []string{}
	}
	kind := c.AccountKind
	if kind == "" {
		kind = store.AccountPerson
	}
	_, err := tx.change(ctx, `INSERT INTO user_changes (`+userChangeCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		c.ID, c.Kind, c.Username, c.Group, c.DisplayName, c.Email, jsonText(groups), c.Status, c.AuthorID, c.AuthorName,
		c.UserID, c.DecidedByID, c.DecidedByName, c.DecisionComment, micros(c.CreatedAt), micros(c.DecidedAt), kind, c.OwnerTeam)
	return err
}

func (tx *Tx) UserChangeDecide(ctx context.Context, c *store.UserChange) error {
	res, err := tx.change(ctx, `UPDATE user_changes SET status = ?, user_id = ?, decided_by_id = ?, decided_by_name = ?,
		decision_comment = ?, decided_at = ? WHERE id = ?`, c.Status, c.UserID, c.DecidedByID, c.DecidedByName, c.DecisionComment,
		micros(c.DecidedAt), c.ID)
	if err != nil {
		return err
	}
	return expectOne(res, "user change")
}

func scanAccountLink(sc interface{ Scan(...any) error }) (*store.AccountLink, error) {
	var l store.AccountLink
	var created sql.NullInt64
	if err := sc.Scan(&l.UserID, &l.ByID, &l.ByName, &l.Reason, &l.EventID, &created); err != nil {
		return nil, err
	}
	l.CreatedAt = fromMicros(created)
	return &l, nil
}

func (q queries) AccountLinks(ctx context.Context, userID string) ([]*store.AccountLink, error) {
	return list(ctx, q, scanAccountLink, `SELECT user_id, by_id, by_name, reason, event_id, created_at FROM account_links
		WHERE user_id = ? OR by_id = ? ORDER BY created_at, user_id, by_id`, userID, userID)
}

func (tx *Tx) AccountLinkAdd(ctx context.Context, l *store.AccountLink) error {
	_, err := tx.change(ctx, `INSERT INTO account_links (user_id, by_id, by_name, reason, event_id, created_at) VALUES (?,?,?,?,?,?)
		ON CONFLICT DO NOTHING`, l.UserID, l.ByID, l.ByName, l.Reason, l.EventID, micros(l.CreatedAt))
	return err
}
