-- Policy versions under dual control: one is active at a time.
CREATE TABLE policy_versions (
	id TEXT PRIMARY KEY,
	number INTEGER NOT NULL UNIQUE,
	digest TEXT NOT NULL,
	text TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	status TEXT NOT NULL,
	author_id TEXT NOT NULL,
	author_name TEXT NOT NULL,
	decided_by_id TEXT NOT NULL DEFAULT '',
	decided_by_name TEXT NOT NULL DEFAULT '',
	decision_comment TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	decided_at BIGINT
);
CREATE INDEX policy_versions_status ON policy_versions (status, number);
