-- The audit log as an RFC 6962 Merkle tree (golang.org/x/mod/sumdb/tlog):
-- the stored hashes, written in the same transaction as each event, make
-- proofs cheap; signed checkpoints fix the tree head at a size.
CREATE TABLE audit_hashes (
	idx BIGINT PRIMARY KEY,
	hash BLOB NOT NULL
);

CREATE TABLE audit_checkpoints (
	size BIGINT PRIMARY KEY,
	root_hash TEXT NOT NULL,
	note TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TRIGGER audit_hashes_no_update BEFORE UPDATE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit_hashes is append-only'); END;
CREATE TRIGGER audit_hashes_no_delete BEFORE DELETE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit_hashes is append-only'); END;
