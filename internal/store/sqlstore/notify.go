package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// SetOutboxTypes makes every audit event of these types put a row in the
// notification outbox, in its transaction; none (the default) puts none.
func (db *DB) SetOutboxTypes(types []string) {
	m := map[string]bool{}
	for _, t := range types {
		m[t] = true
	}
	db.outbox.Store(&m)
}

// outboxAdd is AuditAppend's part: the outbox row of an event that
// notifies.
func (tx *Tx) outboxAdd(ctx context.Context, e *store.AuditEvent) error {
	if tx.outbox == nil || !(*tx.outbox)[e.Type] {
		return nil
	}
	_, err := tx.exec(ctx, `INSERT INTO notify_outbox (id, event_seq, type, subject, created_at) VALUES (?,?,?,?,?)`,
		e.ID, e.Seq, e.Type, e.Subject, micros(e.Time))
	return err
}

// bookkeep runs fn in a write transaction that needs no audit event and
// takes no lock beside the rows it touches: the dispatcher's state of
// delivery is not a change of what Airlock governs (the audit event that
// caused a notification is the record of it).
func (db *DB) bookkeep(ctx context.Context, fn func(q queries) error) error {
	return db.retry(ctx, func() error {
		sqlTx, err := db.writer.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		if err := fn(queries{q: sqlTx, d: &db.dialect, cache: db.writes}); err != nil {
			_ = sqlTx.Rollback()
			return err
		}
		return sqlTx.Commit()
	})
}

func (db *DB) OutboxAdd(ctx context.Context, e *store.OutboxEntry) (bool, error) {
	var added bool
	err := db.bookkeep(ctx, func(q queries) error {
		res, err := q.exec(ctx, `INSERT INTO notify_outbox (id, event_seq, type, subject, created_at) VALUES (?,?,?,?,?)
			ON CONFLICT DO NOTHING`, e.ID, e.EventSeq, e.Type, e.Subject, micros(e.CreatedAt))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		added = n == 1
		return err
	})
	return added, err
}

func (db *DB) OutboxClaim(ctx context.Context, owner string, now, until time.Time, limit int) ([]*store.OutboxEntry, error) {
	var out []*store.OutboxEntry
	err := db.bookkeep(ctx, func(q queries) error {
		out = nil
		rows, err := q.query(ctx, `UPDATE notify_outbox SET lease_owner = ?, lease_until = ?
			WHERE id IN (SELECT id FROM notify_outbox WHERE expanded_at IS NULL AND lease_until < ? ORDER BY created_at, id LIMIT ?)
			AND expanded_at IS NULL AND lease_until < ?
			RETURNING id, event_seq, type, subject, created_at`, owner, micros(until), micros(now), limit, micros(now))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e store.OutboxEntry
			var created sql.NullInt64
			if err := rows.Scan(&e.ID, &e.EventSeq, &e.Type, &e.Subject, &created); err != nil {
				return err
			}
			e.CreatedAt = fromMicros(created)
			out = append(out, &e)
		}
		return rows.Err()
	})
	return out, err
}

func (db *DB) OutboxExpand(ctx context.Context, id, owner string, ds []*store.Delivery, at time.Time) error {
	return db.bookkeep(ctx, func(q queries) error {
		res, err := q.exec(ctx, `UPDATE notify_outbox SET expanded_at = ? WHERE id = ? AND lease_owner = ? AND expanded_at IS NULL`,
			micros(at), id, owner)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("outbox %s: %w", id, store.ErrLeaseLost)
		}
		for _, d := range ds {
			msg := string(d.Message)
			if msg == "" {
				msg = "{}"
			}
			if _, err := q.exec(ctx, `INSERT INTO notify_deliveries (id, outbox_id, kind, channel, target, user_id, message, status, next_at, created_at)
				VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
				d.ID, d.OutboxID, d.Kind, d.Channel, d.Target, d.UserID, msg, store.DeliveryPending, micros(d.NextAt), micros(d.CreatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
}

const deliveryCols = `id, outbox_id, kind, channel, target, user_id, message, status, attempts, next_at, last_error, created_at, delivered_at`

func scanDelivery(sc interface{ Scan(...any) error }) (*store.Delivery, error) {
	var d store.Delivery
	var next, created, delivered sql.NullInt64
	var msg string
	if err := sc.Scan(&d.ID, &d.OutboxID, &d.Kind, &d.Channel, &d.Target, &d.UserID, &msg, &d.Status, &d.Attempts, &next,
		&d.LastError, &created, &delivered); err != nil {
		return nil, err
	}
	d.NextAt, d.CreatedAt, d.DeliveredAt = fromMicros(next), fromMicros(created), fromMicros(delivered)
	d.Message = []byte(msg)
	return &d, nil
}

func (db *DB) DeliveryClaim(ctx context.Context, owner string, now, until time.Time, limit int) ([]*store.Delivery, error) {
	var out []*store.Delivery
	err := db.bookkeep(ctx, func(q queries) error {
		out = nil
		rows, err := q.query(ctx, `UPDATE notify_deliveries SET lease_owner = ?, lease_until = ?, attempts = attempts + 1
			WHERE id IN (SELECT id FROM notify_deliveries WHERE status = ? AND next_at <= ? AND lease_until < ? ORDER BY next_at, id LIMIT ?)
			AND status = ? AND lease_until < ?
			RETURNING `+deliveryCols, owner, micros(until), store.DeliveryPending, micros(now), micros(now), limit,
			store.DeliveryPending, micros(now))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, err
}

func (db *DB) DeliveryDone(ctx context.Context, owner string, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	return db.bookkeep(ctx, func(q queries) error {
		args := []any{store.DeliveryDelivered, micros(at), owner}
		for _, id := range ids {
			args = append(args, id)
		}
		_, err := q.exec(ctx, `UPDATE notify_deliveries SET status = ?, delivered_at = ?, lease_until = 0, last_error = ''
			WHERE lease_owner = ? AND id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
		return err
	})
}

func (db *DB) DeliveryFailed(ctx context.Context, owner, id, lastError string, next time.Time, dead bool) error {
	status := store.DeliveryPending
	if dead {
		status = store.DeliveryDead
	}
	return db.bookkeep(ctx, func(q queries) error {
		_, err := q.exec(ctx, `UPDATE notify_deliveries SET status = ?, next_at = ?, last_error = ?, lease_until = 0
			WHERE id = ? AND lease_owner = ?`, status, micros(next), lastError, id, owner)
		return err
	})
}

func (q queries) DeliveryGet(ctx context.Context, id string) (*store.Delivery, error) {
	d, err := scanDelivery(q.row(ctx, `SELECT `+deliveryCols+` FROM notify_deliveries WHERE id = ?`, id))
	return d, notFound("delivery", err)
}

func (q queries) DeliveryList(ctx context.Context, p store.DeliveryListParams) ([]*store.Delivery, error) {
	s, args := `SELECT `+deliveryCols+` FROM notify_deliveries WHERE 1 = 1`, []any{}
	if p.Status != "" {
		s += ` AND status = ?`
		args = append(args, p.Status)
	}
	if p.OutboxID != "" {
		s += ` AND outbox_id = ?`
		args = append(args, p.OutboxID)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	return list(ctx, q, scanDelivery, s+` ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, limit)...)
}

// DeliveryRetry puts a dead letter back in the queue: an admin's act,
// audited by the caller in the same transaction.
func (tx *Tx) DeliveryRetry(ctx context.Context, id string, at time.Time) error {
	res, err := tx.change(ctx, `UPDATE notify_deliveries SET status = ?, attempts = 0, next_at = ?, lease_until = 0
		WHERE id = ? AND status = ?`, store.DeliveryPending, micros(at), id, store.DeliveryDead)
	if err != nil {
		return err
	}
	return expectOne(res, "dead letter")
}

func (q queries) SubscriptionList(ctx context.Context, userID string) ([]*store.Subscription, error) {
	return list(ctx, q, func(sc interface{ Scan(...any) error }) (*store.Subscription, error) {
		var s store.Subscription
		var updated sql.NullInt64
		if err := sc.Scan(&s.UserID, &s.Kind, &s.Channel, &s.Enabled, &updated); err != nil {
			return nil, err
		}
		s.UpdatedAt = fromMicros(updated)
		return &s, nil
	}, `SELECT user_id, kind, channel, enabled, updated_at FROM notify_subscriptions WHERE user_id = ? ORDER BY kind, channel`, userID)
}

// SubscriptionSet records a person's choice: a preference, not a change
// of what Airlock governs, so it needs no audit event.
func (db *DB) SubscriptionSet(ctx context.Context, subs []*store.Subscription) error {
	return db.bookkeep(ctx, func(q queries) error {
		for _, s := range subs {
			if _, err := q.exec(ctx, `INSERT INTO notify_subscriptions (user_id, kind, channel, enabled, updated_at) VALUES (?,?,?,?,?)
				ON CONFLICT (user_id, kind, channel) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at`,
				s.UserID, s.Kind, s.Channel, s.Enabled, micros(s.UpdatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
}
