-- Chat accounts linked to Airlock users. A link is made explicitly (the
-- user types a one-time code from their account page into the chat
-- app) and audited; never inferred from a display name or an email. A
-- chat user (provider, team, external ID) is linked to at most one
-- Airlock account.
CREATE TABLE chat_links (
	user_id TEXT NOT NULL,
	provider TEXT NOT NULL,
	external_id TEXT NOT NULL,
	team_id TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (provider, team_id, external_id)
);
CREATE INDEX chat_links_user ON chat_links (user_id);

-- One-time link codes, stored hashed, each good for ten minutes and one
-- use.
CREATE TABLE chat_link_codes (
	code_hash BYTEA PRIMARY KEY,
	user_id TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX chat_link_codes_expiry ON chat_link_codes (expires_at);

-- Signatures of the chat requests acted on, kept for a while past the
-- window a request's timestamp is accepted in: a replayed request (the
-- same body and timestamp, so the same signature) is refused on every
-- replica.
CREATE TABLE chat_seen (
	signature TEXT PRIMARY KEY,
	seen_at BIGINT NOT NULL
);
CREATE INDEX chat_seen_at ON chat_seen (seen_at);
