-- Procedures, their immutable versions, and reviews of those versions.
CREATE TABLE procedures (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	owner TEXT NOT NULL,
	owner_fixed BOOLEAN NOT NULL DEFAULT FALSE,
	active_version_id TEXT NOT NULL DEFAULT '',
	retired_at BIGINT,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

CREATE TABLE procedure_versions (
	id TEXT PRIMARY KEY,
	procedure_id TEXT NOT NULL REFERENCES procedures (id),
	number INTEGER NOT NULL,
	digest TEXT NOT NULL,
	definition TEXT NOT NULL,
	risk TEXT NOT NULL,
	status TEXT NOT NULL,
	author_id TEXT NOT NULL,
	author_name TEXT NOT NULL,
	source_file TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	decided_at BIGINT,
	UNIQUE (procedure_id, number)
);
CREATE INDEX procedure_versions_status ON procedure_versions (status, created_at);

CREATE TABLE procedure_reviews (
	id TEXT PRIMARY KEY,
	version_id TEXT NOT NULL REFERENCES procedure_versions (id),
	digest TEXT NOT NULL,
	reviewer_id TEXT NOT NULL,
	reviewer_name TEXT NOT NULL,
	decision TEXT NOT NULL,
	comment TEXT NOT NULL DEFAULT '',
	reviewer_groups TEXT NOT NULL DEFAULT '[]',
	created_at BIGINT NOT NULL,
	UNIQUE (version_id, reviewer_id)
);
