package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/store"
)

const auditCols = `seq, id, time, type, actor_id, actor_name, subject, outcome, request_id, source_addr, details`

func scanAudit(sc interface{ Scan(...any) error }) (*store.AuditEvent, error) {
	var e store.AuditEvent
	var at sql.NullInt64
	var details []byte
	if err := sc.Scan(&e.Seq, &e.ID, &at, &e.Type, &e.ActorID, &e.ActorName, &e.Subject,
		&e.Outcome, &e.RequestID, &e.SourceAddr, &details); err != nil {
		return nil, err
	}
	e.Details = details
	e.Time = fromMicros(at)
	return &e, nil
}

func (q queries) AuditSize(ctx context.Context) (int64, error) {
	var n int64
	err := q.row(ctx, `SELECT size FROM audit_head WHERE id = 1`).Scan(&n)
	return n, err
}

func (q queries) AuditGet(ctx context.Context, seq int64) (*store.AuditEvent, error) {
	e, err := scanAudit(q.row(ctx, `SELECT `+auditCols+` FROM audit_events WHERE seq = ?`, seq))
	return e, notFound("audit event", err)
}

func (q queries) AuditList(ctx context.Context, p store.AuditListParams) ([]*store.AuditEvent, error) {
	if p.Limit <= 0 {
		p.Limit = 100
	}
	s := `SELECT ` + auditCols + ` FROM audit_events WHERE seq > ?`
	args := []any{p.After}
	if p.Before > 0 {
		s += ` AND seq < ?`
		args = append(args, p.Before)
	}
	if p.Type != "" {
		s += ` AND type = ?`
		args = append(args, p.Type)
	}
	if p.Subject != "" {
		s += ` AND subject = ?`
		args = append(args, p.Subject)
	}
	if p.Actor != "" {
		s += ` AND (actor_id = ? OR actor_name = ?)`
		args = append(args, p.Actor, p.Actor)
	}
	if !p.From.IsZero() {
		s += ` AND time >= ?`
		args = append(args, micros(p.From))
	}
	if !p.To.IsZero() {
		s += ` AND time < ?`
		args = append(args, micros(p.To))
	}
	if p.Newest {
		s += ` ORDER BY seq DESC LIMIT ?`
		return list(ctx, q, scanAudit, s, append(args, p.Limit)...)
	}
	s += ` ORDER BY seq LIMIT ?`
	args = append(args, p.Limit)
	return list(ctx, q, scanAudit, s, args...)
}

func (q queries) AuditLeaves(ctx context.Context, lo, hi int64, fn func(*store.LeafRow) error) error {
	s, args := `SELECT `+auditCols+` FROM audit_events WHERE seq >= ?`, []any{lo}
	if hi > 0 {
		s += ` AND seq < ?`
		args = append(args, hi)
	}
	rows, err := q.query(ctx, s+` ORDER BY seq`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var r store.LeafRow
	var at sql.NullInt64
	zero := time.Time{}.UnixMicro()
	for rows.Next() {
		if err := rows.Scan(&r.Seq, (*sql.RawBytes)(&r.ID), &at, (*sql.RawBytes)(&r.Type), (*sql.RawBytes)(&r.ActorID),
			(*sql.RawBytes)(&r.ActorName), (*sql.RawBytes)(&r.Subject), (*sql.RawBytes)(&r.Outcome),
			(*sql.RawBytes)(&r.RequestID), (*sql.RawBytes)(&r.SourceAddr), (*sql.RawBytes)(&r.Details)); err != nil {
			return err
		}
		r.TimeUS = zero
		if at.Valid {
			r.TimeUS = at.Int64
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AuditAppend queues e for the transaction's end: a transaction's
// events are written together, in the order appended, just before it
// commits (flushAudit) — as are the events of each member of a group
// commit, inside its savepoint. e.Seq is set then. A read of the log in
// the same transaction writes them first.
func (tx *Tx) AuditAppend(ctx context.Context, e *store.AuditEvent) error {
	if e.Type == "" || e.ID == "" || e.Time.IsZero() {
		return errors.New("audit append: event needs id, type and time")
	}
	if len(e.Details) == 0 {
		e.Details = []byte("{}")
	}
	e.Time = e.Time.Truncate(time.Microsecond) // as stored, so Leaf matches
	tx.pending = append(tx.pending, e)
	tx.events++
	if tx.firstEvent == "" {
		tx.firstEvent = e.ID
	}
	return nil
}

// flushAudit writes the queued events. The next positions come from the
// single audit_head row: the UPDATE takes that row's write lock, so
// concurrent appenders (on any replica) queue behind each other and
// positions are gap-free — a transaction that rolls back gives its
// positions back.
//
// One event is three statements (four when it notifies): the head, the
// event, and the tree's new hashes in one INSERT; the interior hashes
// its leaf completes subtrees with are read back by the event's INSERT.
// Several are a fixed handful however many they are: the head advanced
// once, the stored hashes they read from before the batch in one
// SELECT, the rest of the tree computed here, then the events and the
// hashes inserted many rows at a time.
//
// A write that fails fails the transaction, even when it was a read's
// and the reader went on: its events are not in it.
func (tx *Tx) flushAudit(ctx context.Context) error {
	if tx.auditErr != nil {
		return tx.auditErr
	}
	evs := tx.pending
	tx.pending = nil
	if len(evs) == 0 {
		return nil
	}
	start := time.Now()
	if err := tx.writeAudit(ctx, evs); err != nil {
		tx.auditErr = err
		return err
	}
	if tx.appended != nil {
		(*tx.appended)(len(evs), time.Since(start))
	}
	return nil
}

// writeAudit writes evs (flushAudit).
func (tx *Tx) writeAudit(ctx context.Context, evs []*store.AuditEvent) error {
	if len(evs) == 1 {
		return tx.appendOne(ctx, evs[0])
	}
	var end int64
	if err := tx.row(ctx, `UPDATE audit_head SET size = size + ? WHERE id = 1 RETURNING size`, len(evs)).Scan(&end); err != nil {
		return fmt.Errorf("audit append: advance head: %w", err)
	}
	first := end - int64(len(evs))
	// The stored hashes the events' leaves complete subtrees with that
	// were stored before this batch: every stored hash of position n has
	// an index at or past StoredHashIndex(0, n).
	known := map[int64]tlog.Hash{}
	var old []int64
	for i, e := range evs {
		e.Seq = first + int64(i)
		for _, idx := range subtreeIndexes(e.Seq) {
			if idx < tlog.StoredHashIndex(0, first) && !slices.Contains(old, idx) {
				old = append(old, idx)
			}
		}
	}
	if len(old) > 0 {
		hs, err := tx.queries.AuditHashes(ctx, old) // fails on one missing
		if err != nil {
			return fmt.Errorf("audit append: read hashes: %w", err)
		}
		for i, h := range hs {
			if len(h) != len(tlog.Hash{}) {
				return fmt.Errorf("audit append: stored hash %d is %d bytes", old[i], len(h))
			}
			known[old[i]] = tlog.Hash(h)
		}
	}
	read := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			h, ok := known[x]
			if !ok {
				return nil, fmt.Errorf("tlog reads hash %d, neither stored before the batch nor computed in it", x)
			}
			out[i] = h
		}
		return out, nil
	})
	var hashArgs []any
	for _, e := range evs {
		hashes, err := tlog.StoredHashes(e.Seq, e.Leaf(), read)
		if err != nil {
			return fmt.Errorf("audit append: tree: %w", err)
		}
		start := tlog.StoredHashIndex(0, e.Seq)
		for i, h := range hashes {
			known[start+int64(i)] = h
			hashArgs = append(hashArgs, start+int64(i), h[:])
		}
	}
	err := inChunks(len(evs), maxEventRows, func(lo, hi int) error {
		args := make([]any, 0, (hi-lo)*11)
		for _, e := range evs[lo:hi] {
			args = append(args, eventArgs(e)...)
		}
		_, err := tx.exec(ctx, auditEventRows(hi-lo), args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("audit append: %w", err)
	}
	err = inChunks(len(hashArgs)/2, maxHashRows, func(lo, hi int) error {
		_, err := tx.exec(ctx, auditHashInsert(hi-lo), hashArgs[2*lo:2*hi]...)
		return err
	})
	if err != nil {
		return fmt.Errorf("audit append: store hashes: %w", err)
	}
	for _, e := range evs {
		if err := tx.outboxAdd(ctx, e); err != nil {
			return fmt.Errorf("audit append: notification outbox: %w", err)
		}
	}
	return nil
}

// Rows per multi-row INSERT (inChunks).
const (
	maxEventRows = 64
	maxHashRows  = 256
)

// appendOne writes one event.
func (tx *Tx) appendOne(ctx context.Context, e *store.AuditEvent) error {
	var size int64
	if err := tx.row(ctx, `UPDATE audit_head SET size = size + 1 WHERE id = 1 RETURNING size`).Scan(&size); err != nil {
		return fmt.Errorf("audit append: advance head: %w", err)
	}
	e.Seq = size - 1
	old, err := tx.auditInsertEvent(ctx, e)
	if err != nil {
		return fmt.Errorf("audit append: %w", err)
	}
	if err := tx.outboxAdd(ctx, e); err != nil {
		return fmt.Errorf("audit append: notification outbox: %w", err)
	}
	// The tree: the leaf hash and the interior hashes it completes, under
	// the same lock and in the same transaction as the event.
	hashes, err := tlog.StoredHashes(e.Seq, e.Leaf(), tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		if !slices.Equal(idx, old.indexes) {
			return nil, fmt.Errorf("tlog reads hashes %v, the insert read %v", idx, old.indexes)
		}
		return old.hashes, nil
	}))
	if err != nil {
		return fmt.Errorf("audit append: tree: %w", err)
	}
	start := tlog.StoredHashIndex(0, e.Seq)
	args := make([]any, 0, 2*len(hashes))
	for i, h := range hashes {
		args = append(args, start+int64(i), h[:])
	}
	if _, err := tx.exec(ctx, auditHashInsert(len(hashes)), args...); err != nil {
		return fmt.Errorf("audit append: store hashes: %w", err)
	}
	return nil
}

// subtreeHashes are the stored hashes an append at some position reads
// to complete subtrees: one per trailing 1 bit of the position, sorted,
// at the indexes tlog.StoredHashes asks for (it checks them).
type subtreeHashes struct {
	indexes []int64
	hashes  []tlog.Hash
}

// auditInsertEvent inserts e (its Seq set) and returns the stored hashes
// its leaf completes subtrees with, read by the same statement.
func (tx *Tx) auditInsertEvent(ctx context.Context, e *store.AuditEvent) (subtreeHashes, error) {
	old := subtreeHashes{indexes: subtreeIndexes(e.Seq)}
	m := len(old.indexes)
	args := eventArgs(e)
	if m == 0 {
		_, err := tx.exec(ctx, auditEventInsert(0), args...)
		return old, err
	}
	raw := make([][]byte, m)
	dest := make([]any, m)
	for i, idx := range old.indexes {
		args = append(args, idx)
		dest[i] = &raw[i]
	}
	if err := tx.row(ctx, auditEventInsert(m), args...).Scan(dest...); err != nil {
		return old, tx.conflict(err) // as exec reports it
	}
	old.hashes = make([]tlog.Hash, m)
	for i, h := range raw {
		if len(h) != len(tlog.Hash{}) {
			return old, fmt.Errorf("audit hash %d: %w", old.indexes[i], &airlock.Error{Kind: airlock.NotFound, Message: "audit hash not found"})
		}
		copy(old.hashes[i][:], h)
	}
	return old, nil
}

// subtreeIndexes are the stored hashes an append at position seq reads
// to complete subtrees: one per trailing 1 bit of seq, in the order
// tlog.StoredHashes asks for them.
func subtreeIndexes(seq int64) []int64 {
	m := bits.TrailingZeros64(uint64(seq + 1))
	idx := make([]int64, 0, m)
	for i := m - 1; i >= 0; i-- {
		idx = append(idx, tlog.StoredHashIndex(i, seq>>uint(i)-1))
	}
	return idx
}

// eventArgs are e's columns, in auditCols' order.
func eventArgs(e *store.AuditEvent) []any {
	return []any{e.Seq, e.ID, micros(e.Time), e.Type, e.ActorID, e.ActorName, e.Subject, e.Outcome,
		e.RequestID, e.SourceAddr, string(e.Details)}
}

// auditEventRows is the INSERT of n events.
func auditEventRows(n int) string {
	return `INSERT INTO audit_events (` + auditCols + `) VALUES (?,?,?,?,?,?,?,?,?,?,?)` + strings.Repeat(`, (?,?,?,?,?,?,?,?,?,?,?)`, n-1)
}

// auditEventInsert is the INSERT of an event that also reads back
// stored hashes, one per placeholder after the event's. Built per count,
// the texts stay few (one per bit of a position), and each is prepared
// once.
func auditEventInsert(reads int) string {
	s := `INSERT INTO audit_events (` + auditCols + `) VALUES (?,?,?,?,?,?,?,?,?,?,?)`
	if reads > 0 {
		s += ` RETURNING (SELECT hash FROM audit_hashes WHERE idx = ?)` +
			strings.Repeat(`, (SELECT hash FROM audit_hashes WHERE idx = ?)`, reads-1)
	}
	return s
}

// auditHashInsert is the INSERT of n hashes, as (idx, hash) arguments.
func auditHashInsert(n int) string {
	return `INSERT INTO audit_hashes (idx, hash) VALUES (?, ?)` + strings.Repeat(`, (?, ?)`, n-1)
}

func (q queries) AuditHashes(ctx context.Context, indexes []int64) ([][]byte, error) {
	out := make([][]byte, len(indexes))
	pos := make(map[int64][]int, len(indexes))
	for i, idx := range indexes {
		pos[idx] = append(pos[idx], i)
	}
	err := inChunks(len(indexes), 512, func(lo, hi int) error {
		args := make([]any, hi-lo)
		for i, idx := range indexes[lo:hi] {
			args[i] = idx
		}
		rows, err := q.query(ctx, `SELECT idx, hash FROM audit_hashes WHERE idx IN (?`+strings.Repeat(",?", hi-lo-1)+`)`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var idx int64
			var h []byte
			if err := rows.Scan(&idx, &h); err != nil {
				return err
			}
			for _, i := range pos[idx] {
				out[i] = h
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	for i, h := range out {
		if h == nil {
			return nil, fmt.Errorf("audit hash %d: %w", indexes[i], &airlock.Error{Kind: airlock.NotFound, Message: "audit hash not found"})
		}
	}
	return out, nil
}

func (q queries) AuditHashRange(ctx context.Context, lo, hi int64) ([]store.IndexedHash, error) {
	rows, err := q.query(ctx, `SELECT idx, hash FROM audit_hashes WHERE idx >= ? AND idx < ? ORDER BY idx`, lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]store.IndexedHash, 0, hi-lo)
	for rows.Next() {
		var h store.IndexedHash
		if err := rows.Scan(&h.Index, &h.Hash); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

func scanCheckpoint(sc interface{ Scan(...any) error }) (*store.Checkpoint, error) {
	var c store.Checkpoint
	var created sql.NullInt64
	err := sc.Scan(&c.Size, &c.RootHash, &c.Note, &created)
	c.CreatedAt = fromMicros(created)
	return &c, err
}

func (q queries) AuditCheckpoints(ctx context.Context) ([]*store.Checkpoint, error) {
	return list(ctx, q, scanCheckpoint, `SELECT size, root_hash, note, created_at FROM audit_checkpoints ORDER BY size`)
}

func (q queries) AuditCheckpointLatest(ctx context.Context) (*store.Checkpoint, error) {
	c, err := scanCheckpoint(q.row(ctx, `SELECT size, root_hash, note, created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return c, err
}

func (db *DB) AuditCheckpointAdd(ctx context.Context, c *store.Checkpoint) error {
	w := queries{q: db.writer, d: &db.dialect, cache: db.writes}
	_, err := w.exec(ctx, `INSERT INTO audit_checkpoints (size, root_hash, note, created_at) VALUES (?,?,?,?)
		ON CONFLICT (size) DO NOTHING`, c.Size, c.RootHash, c.Note, micros(c.CreatedAt))
	return err
}

// A transaction reads the log with its own events in it: each read
// writes the queued events first.

// AuditSize implements store.Reader in a transaction.
func (tx *Tx) AuditSize(ctx context.Context) (int64, error) {
	if err := tx.flushAudit(ctx); err != nil {
		return 0, err
	}
	return tx.queries.AuditSize(ctx)
}

// AuditGet implements store.Reader in a transaction.
func (tx *Tx) AuditGet(ctx context.Context, seq int64) (*store.AuditEvent, error) {
	if err := tx.flushAudit(ctx); err != nil {
		return nil, err
	}
	return tx.queries.AuditGet(ctx, seq)
}

// AuditList implements store.Reader in a transaction.
func (tx *Tx) AuditList(ctx context.Context, p store.AuditListParams) ([]*store.AuditEvent, error) {
	if err := tx.flushAudit(ctx); err != nil {
		return nil, err
	}
	return tx.queries.AuditList(ctx, p)
}

// AuditLeaves implements store.Reader in a transaction.
func (tx *Tx) AuditLeaves(ctx context.Context, lo, hi int64, fn func(*store.LeafRow) error) error {
	if err := tx.flushAudit(ctx); err != nil {
		return err
	}
	return tx.queries.AuditLeaves(ctx, lo, hi, fn)
}

// AuditHashes implements store.Reader in a transaction.
func (tx *Tx) AuditHashes(ctx context.Context, indexes []int64) ([][]byte, error) {
	if err := tx.flushAudit(ctx); err != nil {
		return nil, err
	}
	return tx.queries.AuditHashes(ctx, indexes)
}

// AuditHashRange implements store.Reader in a transaction.
func (tx *Tx) AuditHashRange(ctx context.Context, lo, hi int64) ([]store.IndexedHash, error) {
	if err := tx.flushAudit(ctx); err != nil {
		return nil, err
	}
	return tx.queries.AuditHashRange(ctx, lo, hi)
}
