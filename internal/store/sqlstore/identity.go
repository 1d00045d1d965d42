package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

const userCols = `id, username, display_name, email, password_hash, must_change_password, disabled, issuer, subject, created_at, updated_at,
	kind, owner_team`

func scanUser(sc interface{ Scan(...any) error }) (*store.User, error) {
	var u store.User
	var created, updated sql.NullInt64
	if err := sc.Scan(&u.ID, &u.Username, &u.DisplayName, &u.Email, &u.PasswordHash,
		&u.MustChangePassword, &u.Disabled, &u.Issuer, &u.Subject, &created, &updated, &u.Kind, &u.OwnerTeam); err != nil {
		return nil, err
	}
	u.CreatedAt, u.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &u, nil
}

func (q queries) UserGetByID(ctx context.Context, id string) (*store.User, error) {
	u, err := scanUser(q.row(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	return u, notFound("user", err)
}

func (q queries) UserGetByUsername(ctx context.Context, username string) (*store.User, error) {
	u, err := scanUser(q.row(ctx, `SELECT `+userCols+` FROM users WHERE username = ?`, username))
	return u, notFound("user", err)
}

func (q queries) UserGetBySubject(ctx context.Context, issuer, subject string) (*store.User, error) {
	u, err := scanUser(q.row(ctx, `SELECT `+userCols+` FROM users WHERE issuer = ? AND subject = ? AND subject <> ''`, issuer, subject))
	return u, notFound("user", err)
}

func (q queries) UserList(ctx context.Context) ([]*store.User, error) {
	return list(ctx, q, scanUser, `SELECT `+userCols+` FROM users ORDER BY username`)
}

func (tx *Tx) UserInsert(ctx context.Context, u *store.User) error {
	kind := u.Kind
	if kind == "" {
		kind = store.AccountPerson
	}
	_, err := tx.change(ctx, `INSERT INTO users (`+userCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		u.ID, u.Username, u.DisplayName, u.Email, u.PasswordHash, u.MustChangePassword, u.Disabled,
		u.Issuer, u.Subject, micros(u.CreatedAt), micros(u.UpdatedAt), kind, u.OwnerTeam)
	return err
}

func (tx *Tx) UserUpdate(ctx context.Context, u *store.User) error {
	res, err := tx.change(ctx, `UPDATE users SET username = ?, display_name = ?, email = ?, password_hash = ?,
		must_change_password = ?, disabled = ?, issuer = ?, subject = ?, updated_at = ? WHERE id = ?`,
		u.Username, u.DisplayName, u.Email, u.PasswordHash, u.MustChangePassword, u.Disabled,
		u.Issuer, u.Subject, micros(u.UpdatedAt), u.ID)
	if err != nil {
		return err
	}
	return expectOne(res, "user")
}

const groupCols = `id, name, description, created_at`

func scanGroup(sc interface{ Scan(...any) error }) (*store.Group, error) {
	var g store.Group
	var created sql.NullInt64
	if err := sc.Scan(&g.ID, &g.Name, &g.Description, &created); err != nil {
		return nil, err
	}
	g.CreatedAt = fromMicros(created)
	return &g, nil
}

func (q queries) GroupGetByName(ctx context.Context, name string) (*store.Group, error) {
	g, err := scanGroup(q.row(ctx, `SELECT `+groupCols+` FROM user_groups WHERE name = ?`, name))
	return g, notFound("group", err)
}

func (q queries) GroupList(ctx context.Context) ([]*store.Group, error) {
	return list(ctx, q, scanGroup, `SELECT `+groupCols+` FROM user_groups ORDER BY name`)
}

func (q queries) GroupListForUser(ctx context.Context, userID string) ([]*store.Group, error) {
	return list(ctx, q, scanGroup, `SELECT DISTINCT g.id, g.name, g.description, g.created_at FROM user_groups g
		JOIN group_members m ON m.group_id = g.id WHERE m.user_id = ? ORDER BY g.name`, userID)
}

func (q queries) GroupMemberList(ctx context.Context, groupID string) ([]*store.GroupMember, error) {
	return list(ctx, q, func(sc interface{ Scan(...any) error }) (*store.GroupMember, error) {
		var m store.GroupMember
		var created sql.NullInt64
		err := sc.Scan(&m.GroupID, &m.UserID, &m.Source, &created)
		m.CreatedAt = fromMicros(created)
		return &m, err
	}, `SELECT group_id, user_id, source, created_at FROM group_members
		WHERE group_id = ? ORDER BY user_id, source`, groupID)
}

func (tx *Tx) GroupInsert(ctx context.Context, g *store.Group) error {
	_, err := tx.change(ctx, `INSERT INTO user_groups (`+groupCols+`) VALUES (?,?,?,?)`,
		g.ID, g.Name, g.Description, micros(g.CreatedAt))
	return err
}

func (tx *Tx) GroupMemberAdd(ctx context.Context, m *store.GroupMember) error {
	_, err := tx.change(ctx, `INSERT INTO group_members (group_id, user_id, source, created_at) VALUES (?,?,?,?)`,
		m.GroupID, m.UserID, m.Source, micros(m.CreatedAt))
	return err
}

func (tx *Tx) GroupMemberRemove(ctx context.Context, groupID, userID string) error {
	res, err := tx.change(ctx, `DELETE FROM group_members WHERE group_id = ? AND user_id = ?`, groupID, userID)
	if err != nil {
		return err
	}
	return expectOne(res, "group membership")
}

const tokenCols = `id, user_id, name, hash, created_at, expires_at, last_used_at, revoked_at, scope`

func scanToken(sc interface{ Scan(...any) error }) (*store.Token, error) {
	var t store.Token
	var created, expires, used, revoked sql.NullInt64
	var scope string
	if err := sc.Scan(&t.ID, &t.UserID, &t.Name, &t.Hash, &created, &expires, &used, &revoked, &scope); err != nil {
		return nil, err
	}
	if scope != "" {
		t.Scope = strings.Split(scope, ",")
	}
	t.CreatedAt, t.ExpiresAt = fromMicros(created), fromMicros(expires)
	t.LastUsedAt, t.RevokedAt = fromMicros(used), fromMicros(revoked)
	return &t, nil
}

func (q queries) TokenGetByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	t, err := scanToken(q.row(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE hash = ?`, hash))
	return t, notFound("token", err)
}

func (q queries) TokenGetByID(ctx context.Context, id string) (*store.Token, error) {
	t, err := scanToken(q.row(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE id = ?`, id))
	return t, notFound("token", err)
}

func (q queries) TokenListForUser(ctx context.Context, userID string) ([]*store.Token, error) {
	return list(ctx, q, scanToken, `SELECT `+tokenCols+` FROM api_tokens WHERE user_id = ? ORDER BY id`, userID)
}

func (tx *Tx) TokenInsert(ctx context.Context, t *store.Token) error {
	_, err := tx.change(ctx, `INSERT INTO api_tokens (`+tokenCols+`) VALUES (?,?,?,?,?,?,?,?,?)`,
		t.ID, t.UserID, t.Name, t.Hash, micros(t.CreatedAt), micros(t.ExpiresAt), micros(t.LastUsedAt), micros(t.RevokedAt),
		strings.Join(t.Scope, ","))
	return err
}

func (tx *Tx) TokenRevoke(ctx context.Context, id string, at time.Time) error {
	res, err := tx.change(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, micros(at), id)
	if err != nil {
		return err
	}
	return expectOne(res, "live token")
}

const sessionCols = `id, user_id, hash, method, created_at, last_seen_at, expires_at, revoked_at, source_addr, user_agent`

func (q queries) SessionGetByHash(ctx context.Context, hash []byte) (*store.Session, error) {
	var s store.Session
	var created, seen, expires, revoked sql.NullInt64
	err := q.row(ctx, `SELECT `+sessionCols+` FROM sessions WHERE hash = ?`, hash).Scan(
		&s.ID, &s.UserID, &s.Hash, &s.Method, &created, &seen, &expires, &revoked, &s.SourceAddr, &s.UserAgent)
	if err != nil {
		return nil, notFound("session", err)
	}
	s.CreatedAt, s.LastSeenAt = fromMicros(created), fromMicros(seen)
	s.ExpiresAt, s.RevokedAt = fromMicros(expires), fromMicros(revoked)
	return &s, nil
}

func (tx *Tx) SessionInsert(ctx context.Context, s *store.Session) error {
	_, err := tx.change(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES (?,?,?,?,?,?,?,?,?,?)`,
		s.ID, s.UserID, s.Hash, s.Method, micros(s.CreatedAt), micros(s.LastSeenAt), micros(s.ExpiresAt),
		micros(s.RevokedAt), s.SourceAddr, s.UserAgent)
	return err
}

func (tx *Tx) SessionRevoke(ctx context.Context, id string, at time.Time) error {
	res, err := tx.change(ctx, `UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, micros(at), id)
	if err != nil {
		return err
	}
	return expectOne(res, "live session")
}

func (tx *Tx) SessionRevokeForUser(ctx context.Context, userID, exceptID string, at time.Time) (int64, error) {
	res, err := tx.change(ctx, `UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND id <> ? AND revoked_at IS NULL`,
		micros(at), userID, exceptID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q queries) LoginFailureStats(ctx context.Context, account, addr string, since time.Time) (*store.LoginFailureStats, error) {
	var st store.LoginFailureStats
	count := func(n *int, last *time.Time, where string, args ...any) error {
		var at sql.NullInt64
		err := q.row(ctx, `SELECT COUNT(*), MAX(at) FROM login_failures WHERE `+where+` AND at >= ?`,
			append(args, micros(since))...).Scan(n, &at)
		*last = fromMicros(at)
		return err
	}
	if err := count(&st.Account, &st.AccountLast, `account = ?`, account); err != nil {
		return nil, err
	}
	if err := count(&st.Pair, &st.PairLast, `account = ? AND addr = ?`, account, addr); err != nil {
		return nil, err
	}
	if addr != "" { // in-process callers have no address to hold against each other
		if err := count(&st.Source, &st.SourceLast, `addr = ?`, addr); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

func (tx *Tx) LoginFailureAdd(ctx context.Context, account, addr string, at, pruneBefore time.Time) error {
	if _, err := tx.change(ctx, `DELETE FROM login_failures WHERE at < ?`, micros(pruneBefore)); err != nil {
		return err
	}
	_, err := tx.change(ctx, `INSERT INTO login_failures (account, addr, at) VALUES (?, ?, ?)`, account, addr, micros(at))
	return err
}

func (tx *Tx) LoginFailuresClear(ctx context.Context, account, addr string) error {
	_, err := tx.change(ctx, `DELETE FROM login_failures WHERE account = ? AND addr = ?`, account, addr)
	return err
}

// list runs a query and scans every row. Outside a transaction, a
// connection the server closed is retried on another: with pgx the error
// of a dead connection surfaces while reading the rows, not when the
// query is sent, so the retry covers both.
func list[T any](ctx context.Context, q queries, scan func(interface{ Scan(...any) error }) (T, error), s string, args ...any) ([]T, error) {
	var out []T
	err := q.read(ctx, func() error {
		out = nil
		rows, err := q.queryOnce(ctx, s, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	return out, err
}
