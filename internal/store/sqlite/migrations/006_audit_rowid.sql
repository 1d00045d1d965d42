-- seq and idx become INTEGER PRIMARY KEY, which in SQLite makes them the
-- rowid: reading the log in order (audit verify, evidence export) then
-- walks the table's own b-tree instead of an index plus a lookup per row.
-- The tables are rebuilt with the same rows; their triggers come back.
-- The index on time (never queried) gives way to one on subject: a run's
-- events are read by subject.
CREATE TABLE audit_events_new (
	seq INTEGER PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	time BIGINT NOT NULL,
	type TEXT NOT NULL,
	actor_id TEXT NOT NULL DEFAULT '',
	actor_name TEXT NOT NULL DEFAULT '',
	subject TEXT NOT NULL DEFAULT '',
	outcome TEXT NOT NULL DEFAULT '',
	request_id TEXT NOT NULL DEFAULT '',
	source_addr TEXT NOT NULL DEFAULT '',
	details TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO audit_events_new (seq, id, time, type, actor_id, actor_name, subject, outcome, request_id, source_addr, details)
	SELECT seq, id, time, type, actor_id, actor_name, subject, outcome, request_id, source_addr, details FROM audit_events ORDER BY seq;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_events_type ON audit_events (type, seq);
CREATE INDEX audit_events_subject ON audit_events (subject, seq);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

CREATE TABLE audit_hashes_new (
	idx INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);
INSERT INTO audit_hashes_new (idx, hash) SELECT idx, hash FROM audit_hashes ORDER BY idx;
DROP TABLE audit_hashes;
ALTER TABLE audit_hashes_new RENAME TO audit_hashes;
CREATE TRIGGER audit_hashes_no_update BEFORE UPDATE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit_hashes is append-only'); END;
CREATE TRIGGER audit_hashes_no_delete BEFORE DELETE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit_hashes is append-only'); END;
