-- Times are BIGINT microseconds since the Unix epoch (UTC) in both drivers,
-- so the one set of statements in sqlstore runs unchanged on each.
CREATE TABLE users (
	id TEXT PRIMARY KEY,
	username TEXT NOT NULL UNIQUE,
	display_name TEXT NOT NULL DEFAULT '',
	email TEXT NOT NULL DEFAULT '',
	password_hash TEXT NOT NULL DEFAULT '',
	must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
	disabled BOOLEAN NOT NULL DEFAULT FALSE,
	issuer TEXT NOT NULL DEFAULT '',
	subject TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_sso_subject ON users (issuer, subject) WHERE subject <> '';

CREATE TABLE user_groups (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	description TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL
);

CREATE TABLE group_members (
	group_id TEXT NOT NULL REFERENCES user_groups (id),
	user_id TEXT NOT NULL REFERENCES users (id),
	source TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE api_tokens (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users (id),
	name TEXT NOT NULL,
	hash BLOB NOT NULL UNIQUE,
	created_at BIGINT NOT NULL,
	expires_at BIGINT,
	last_used_at BIGINT,
	revoked_at BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE sessions (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users (id),
	hash BLOB NOT NULL UNIQUE,
	method TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	last_seen_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	revoked_at BIGINT,
	source_addr TEXT NOT NULL DEFAULT '',
	user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

-- The audit log. seq is the leaf position in the (later) Merkle tree:
-- gap-free and strictly ordered, handed out by audit_head under its row
-- lock in the same transaction as the change the event describes.
CREATE TABLE audit_head (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	size BIGINT NOT NULL
);
INSERT INTO audit_head (id, size) VALUES (1, 0);

CREATE TABLE audit_events (
	seq BIGINT PRIMARY KEY,
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
CREATE INDEX audit_events_type ON audit_events (type, seq);
CREATE INDEX audit_events_time ON audit_events (time);

-- Append-only at the storage level too. Someone with database access can
-- drop these triggers; the Merkle log and signed checkpoints catch that.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
