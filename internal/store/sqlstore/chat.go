package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

func scanChatLink(sc interface{ Scan(...any) error }) (*store.ChatLink, error) {
	var l store.ChatLink
	var created sql.NullInt64
	if err := sc.Scan(&l.UserID, &l.Provider, &l.ExternalID, &l.TeamID, &created); err != nil {
		return nil, err
	}
	l.CreatedAt = fromMicros(created)
	return &l, nil
}

func (q queries) ChatLinkList(ctx context.Context, userID string) ([]*store.ChatLink, error) {
	return list(ctx, q, scanChatLink, `SELECT user_id, provider, external_id, team_id, created_at FROM chat_links
		WHERE user_id = ? ORDER BY created_at, provider, team_id, external_id`, userID)
}

func (q queries) ChatLinkGet(ctx context.Context, provider, teamID, externalID string) (*store.ChatLink, error) {
	l, err := scanChatLink(q.row(ctx, `SELECT user_id, provider, external_id, team_id, created_at FROM chat_links
		WHERE provider = ? AND team_id = ? AND external_id = ?`, provider, teamID, externalID))
	if err != nil {
		return nil, notFound("chat link", err)
	}
	return l, nil
}

func (tx *Tx) ChatLinkAdd(ctx context.Context, l *store.ChatLink) error {
	_, err := tx.change(ctx, `INSERT INTO chat_links (user_id, provider, external_id, team_id, created_at) VALUES (?,?,?,?,?)`,
		l.UserID, l.Provider, l.ExternalID, l.TeamID, micros(l.CreatedAt))
	return err
}

func (tx *Tx) ChatLinkDelete(ctx context.Context, userID, provider, teamID, externalID string) error {
	res, err := tx.change(ctx, `DELETE FROM chat_links WHERE user_id = ? AND provider = ? AND team_id = ? AND external_id = ?`,
		userID, provider, teamID, externalID)
	if err != nil {
		return err
	}
	return expectOne(res, "chat link")
}

func (tx *Tx) ChatLinkCodeAdd(ctx context.Context, c *store.ChatLinkCode, now time.Time) error {
	if _, err := tx.exec(ctx, `DELETE FROM chat_link_codes WHERE expires_at <= ?`, micros(now)); err != nil {
		return err
	}
	_, err := tx.exec(ctx, `INSERT INTO chat_link_codes (code_hash, user_id, expires_at) VALUES (?,?,?)`, c.Hash, c.UserID, micros(c.ExpiresAt))
	return err
}

func (tx *Tx) ChatLinkCodeTake(ctx context.Context, hash []byte) (*store.ChatLinkCode, error) {
	c := store.ChatLinkCode{Hash: hash}
	var expires sql.NullInt64
	if err := tx.row(ctx, `SELECT user_id, expires_at FROM chat_link_codes WHERE code_hash = ?`, hash).Scan(&c.UserID, &expires); err != nil {
		return nil, notFound("link code", err)
	}
	if _, err := tx.exec(ctx, `DELETE FROM chat_link_codes WHERE code_hash = ?`, hash); err != nil {
		return nil, err
	}
	c.ExpiresAt = fromMicros(expires)
	return &c, nil
}

func (tx *Tx) ChatSeenAdd(ctx context.Context, signature string, at, pruneBefore time.Time) (bool, error) {
	if _, err := tx.exec(ctx, `DELETE FROM chat_seen WHERE seen_at < ?`, micros(pruneBefore)); err != nil {
		return false, err
	}
	res, err := tx.exec(ctx, `INSERT INTO chat_seen (signature, seen_at) VALUES (?, ?) ON CONFLICT (signature) DO NOTHING`, signature, micros(at))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
