-- The audit log as an RFC 6962 Merkle tree (golang.org/x/mod/sumdb/tlog):
-- the stored hashes, written in the same transaction as each event, make
-- proofs cheap; signed checkpoints fix the tree head at a size.
CREATE TABLE audit_hashes (
	idx BIGINT PRIMARY KEY,
	hash BYTEA NOT NULL
);

CREATE TABLE audit_checkpoints (
	size BIGINT PRIMARY KEY,
	root_hash TEXT NOT NULL,
	note TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TRIGGER audit_hashes_no_change BEFORE UPDATE OR DELETE ON audit_hashes
	FOR EACH ROW EXECUTE FUNCTION airlock_audit_append_only();
CREATE TRIGGER audit_hashes_no_truncate BEFORE TRUNCATE ON audit_hashes
	FOR EACH STATEMENT EXECUTE FUNCTION airlock_audit_append_only();
