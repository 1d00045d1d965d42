package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/airlockhq/airlock/internal/store"
)

// LoginFailureTally implements store.Store. It runs in a write
// transaction of its own (serialized with every other, as Update's are)
// but appends no audit event: its statements are not counted as changes.
// The attempts it counts are recorded by the summary event appended
// when the report is taken (LoginReportRestart, LoginReportTake).
func (db *DB) LoginFailureTally(ctx context.Context, t store.LoginTally) (bool, error) {
	var counted bool
	err := db.retry(ctx, func() error {
		return db.write(ctx, false, func(stx store.Tx) error {
			counted = false
			tx := stx.(*Tx)
			var start sql.NullInt64
			err := tx.row(ctx, `SELECT window_start FROM login_reports WHERE addr = ?`, t.Addr).Scan(&start)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			if !fromMicros(start).After(t.OpenSince) {
				return nil // closed: the caller audits this attempt and opens another
			}
			failed, throttled := 1, 0
			if t.Throttled {
				failed, throttled = 0, 1
			}
			if _, err := tx.exec(ctx, `UPDATE login_reports SET failed = failed + ?, throttled = throttled + ?,
				first_at = COALESCE(first_at, ?), last_at = ? WHERE addr = ?`, failed, throttled, micros(t.At), micros(t.At), t.Addr); err != nil {
				return err
			}
			if t.Username != "" {
				var names, have int
				if err := tx.row(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN username = ? THEN 1 ELSE 0 END), 0)
					FROM login_report_names WHERE addr = ?`, t.Username, t.Addr).Scan(&names, &have); err != nil {
					return err
				}
				switch {
				case have > 0:
				case names < store.MaxReportNames:
					if _, err := tx.exec(ctx, `INSERT INTO login_report_names (addr, username) VALUES (?, ?)`, t.Addr, t.Username); err != nil {
						return err
					}
				default:
					if _, err := tx.exec(ctx, `UPDATE login_reports SET more_names = 1 WHERE addr = ?`, t.Addr); err != nil {
						return err
					}
				}
			}
			if t.Failure {
				if _, err := tx.exec(ctx, `DELETE FROM login_failures WHERE at < ?`, micros(t.PruneBefore)); err != nil {
					return err
				}
				if _, err := tx.exec(ctx, `INSERT INTO login_failures (account, addr, at) VALUES (?, ?, ?)`, t.Username, t.Addr, micros(t.At)); err != nil {
					return err
				}
			}
			counted = true
			return nil
		})
	})
	return counted, err
}

func (q queries) LoginReportsClosed(ctx context.Context, openSince time.Time) ([]string, error) {
	return list(ctx, q, func(r interface{ Scan(...any) error }) (string, error) {
		var addr string
		return addr, r.Scan(&addr)
	}, `SELECT addr FROM login_reports WHERE window_start <= ? ORDER BY window_start`, micros(openSince))
}

func (tx *Tx) LoginReportTake(ctx context.Context, addr string, openSince time.Time) (*store.LoginReport, error) {
	r := store.LoginReport{Addr: addr}
	var start, first, last sql.NullInt64
	var more int
	err := tx.row(ctx, `SELECT window_start, failed, throttled, more_names, first_at, last_at FROM login_reports
		WHERE addr = ? AND window_start <= ?`, addr, micros(openSince)).Scan(&start, &r.Failed, &r.Throttled, &more, &first, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.WindowStart, r.FirstAt, r.LastAt, r.MoreNames = fromMicros(start), fromMicros(first), fromMicros(last), more != 0
	if r.Usernames, err = list(ctx, tx.queries, func(row interface{ Scan(...any) error }) (string, error) {
		var name string
		return name, row.Scan(&name)
	}, `SELECT username FROM login_report_names WHERE addr = ? ORDER BY username`, addr); err != nil {
		return nil, err
	}
	if _, err := tx.exec(ctx, `DELETE FROM login_report_names WHERE addr = ?`, addr); err != nil {
		return nil, err
	}
	// Removing a report that counted nothing loses nothing: it is not a
	// change that needs an event. One that counted attempts is, and its
	// caller appends their summary.
	del := tx.exec
	if r.Failed+r.Throttled > 0 {
		del = tx.change
	}
	if _, err := del(ctx, `DELETE FROM login_reports WHERE addr = ?`, addr); err != nil {
		return nil, err
	}
	if r.Failed+r.Throttled == 0 {
		return nil, nil
	}
	return &r, nil
}

func (tx *Tx) LoginReportRestart(ctx context.Context, addr string, at, openSince time.Time) (*store.LoginReport, error) {
	r, err := tx.LoginReportTake(ctx, addr, openSince)
	if err != nil {
		return nil, err
	}
	// An open report (another replica opened it meanwhile) is kept: the
	// attempt in hand is audited by itself, the report goes on counting.
	_, err = tx.exec(ctx, `INSERT INTO login_reports (addr, window_start) VALUES (?, ?) ON CONFLICT (addr) DO NOTHING`, addr, micros(at))
	return r, err
}
