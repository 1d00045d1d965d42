// Package sqlite is the embedded storage driver: modernc.org/sqlite (pure
// Go) in WAL mode, with one write connection so that writers queue inside
// the process instead of failing with SQLITE_BUSY, and a pool of readers.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/airlockhq/airlock/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Dialect is SQLite's flavour of SQL for sqlstore.
var Dialect = sqlstore.Dialect{
	IsUnique: func(err error) bool {
		var e *sqlite.Error
		if !errors.As(err, &e) {
			return false
		}
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
	// The single writer connection serializes write transactions; BEGIN
	// IMMEDIATE (see dsn) extends that to other processes.
	Classify: classify,
	// Transactions queued for that one connection commit together.
	GroupCommit: true,
}

// classify sorts SQLite's errors for sqlstore: a full disk, an I/O
// error, a read-only file or a lock held past busy_timeout make the
// database unavailable, not the request wrong.
func classify(err error) sqlstore.Class {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return sqlstore.Other
	}
	switch e.Code() & 0xff { // the primary result code
	case sqlite3.SQLITE_FULL:
		return sqlstore.Full
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return sqlstore.Unavailable
	}
	return sqlstore.Other
}

// Connection kinds for dsn.
const (
	writeConn = iota
	// readConn: the readers of requests, which read a few rows each.
	readConn
	// checkpointConn: the background checkpointer's (checkpoint.go).
	checkpointConn
	// scanConn: the readers of whole-log scans (audit verify, export),
	// which map the file instead of copying each page through a read
	// call — scanning the log is dominated by page reads otherwise. The
	// request readers do not: a mapping is remade as the file grows,
	// which on a busy server costs more than the reads it saves
	// (docs/design-notes.md), and the mapped pages count as their RSS.
	scanConn
)

// writerCacheKiB bounds the writer connection's page cache.
const writerCacheKiB = 512

func dsn(path string, kind int) string {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(NORMAL)")
	v.Add("_pragma", "foreign_keys(1)")
	if kind == readConn || kind == scanConn {
		v.Add("_pragma", "query_only(1)")
	}
	if kind == scanConn {
		v.Add("_pragma", "mmap_size(4294967296)") // address space, not memory
	}
	if kind == writeConn {
		// BEGIN IMMEDIATE takes the write lock up front, so a transaction
		// never fails half-way when another process holds it.
		v.Set("_txlock", "immediate")
		// Each member of a group commit is a savepoint, whose statement
		// journal holds the pages it changes; past 64 KiB SQLite spills
		// it to a temporary file — created, written and removed by most
		// run transactions. Kept in memory it is bounded by what one
		// transaction changes.
		v.Add("_pragma", "temp_store(MEMORY)")
		// Checkpoints run in the background (checkpoint.go), not in
		// the commit that crosses SQLite's default 1,000 pages: the
		// writer checkpoints itself only past this backstop.
		v.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", backstopPages))
		// The writer's page cache is never invalidated by another
		// connection, so it fills to its bound and stays there; each
		// 4 KiB page takes an 8 KiB block of the transpiled C
		// allocator. SQLite's default 2,000 KiB held up to 4 MiB of the
		// server's RSS (3 MiB more than this bound after 2,000 runs); a
		// page missed here is read from the operating system's cache
		// (docs/design-notes.md).
		v.Add("_pragma", fmt.Sprintf("cache_size(-%d)", writerCacheKiB))
	}
	return "file:" + filepath.ToSlash(path) + "?" + v.Encode()
}

// OpenReadOnly opens an existing database at path for reading only: no
// file is created, nothing is migrated or written. For inspection, such
// as verifying the audit log of a stopped server or a backup.
func OpenReadOnly(ctx context.Context, path string) (*sqlstore.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlite: no Airlock database at %s (is the data directory right?): %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path, scanConn)+"&mode=ro")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	d := Dialect
	d.GroupCommit = false // nothing to write
	return sqlstore.New(db, db, d, map[string]*sql.DB{"sqlite_reader": db}), nil
}

// private creates the database file 0600 if it is missing, whatever the
// umask, and takes group and other permissions off an existing database
// and its -wal, -shm and -journal files. The database holds password
// hashes, sealed secrets and run output; SQLite creates its -wal and -shm
// files with the database file's mode, so a private database file keeps
// them private too.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		err = f.Chmod(0o600) // the umask may have taken more than group and other
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrExist):
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, perm&^0o077); err != nil {
				return fmt.Errorf("make %s private: %w", p, err)
			}
		}
	}
	return nil
}

// Open opens (creating if needed) the database at path and applies the
// pending migrations.
func Open(ctx context.Context, path string) (*sqlstore.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := private(path); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	writer, err := sql.Open("sqlite", dsn(path, writeConn))
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	ms, err := sqlstore.LoadMigrations(sub(migrationFS))
	if err == nil {
		err = sqlstore.Migrate(ctx, writer, Dialect, ms, "")
	}
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}

	reader, err := sql.Open("sqlite", dsn(path, readConn))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	n := max(4, runtime.NumCPU())
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	scanner, err := sql.Open("sqlite", dsn(path, scanConn))
	if err != nil {
		writer.Close()
		reader.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// Scans are rare: their connections (and mappings) close when idle.
	scanner.SetMaxOpenConns(n)
	scanner.SetConnMaxIdleTime(time.Minute)
	ckpt, err := sql.Open("sqlite", dsn(path, checkpointConn))
	if err != nil {
		writer.Close()
		reader.Close()
		scanner.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	ckpt.SetMaxOpenConns(1)
	db := sqlstore.New(writer, reader, Dialect, map[string]*sql.DB{"sqlite_writer": writer, "sqlite_reader": reader,
		"sqlite_scanner": scanner, "sqlite_checkpointer": ckpt})
	db.SetScanner(scanner)
	db.OnClose(checkpointInBackground(ckpt))
	return db, nil
}
