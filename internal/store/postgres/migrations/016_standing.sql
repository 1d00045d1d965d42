-- Service accounts: non-human principals owned by a team. They hold API
-- tokens and never sign in, approve or review.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'person';
ALTER TABLE users ADD COLUMN owner_team TEXT NOT NULL DEFAULT '';
ALTER TABLE user_changes ADD COLUMN account_kind TEXT NOT NULL DEFAULT 'person';
ALTER TABLE user_changes ADD COLUMN owner_team TEXT NOT NULL DEFAULT '';

-- Standing requests: schedules and event triggers, proposed by one
-- person and approved by others once, bound like a run approval.
CREATE TABLE standing (
	id TEXT PRIMARY KEY,
	kind TEXT NOT NULL,
	name TEXT NOT NULL,
	procedure_id TEXT NOT NULL,
	procedure_name TEXT NOT NULL,
	environment TEXT NOT NULL,
	params TEXT NOT NULL DEFAULT '{}',
	spec TEXT NOT NULL DEFAULT '{}',
	secret BYTEA,
	version_id TEXT NOT NULL DEFAULT '',
	digest TEXT NOT NULL DEFAULT '',
	binding TEXT NOT NULL DEFAULT '',
	targets TEXT NOT NULL DEFAULT '[]',
	approvals_required INTEGER NOT NULL DEFAULT 1,
	status TEXT NOT NULL,
	status_reason TEXT NOT NULL DEFAULT '',
	proposer_id TEXT NOT NULL,
	proposer_name TEXT NOT NULL,
	account_id TEXT NOT NULL DEFAULT '',
	account_name TEXT NOT NULL DEFAULT '',
	cursor_at BIGINT,
	-- proposed_at: approvals made before it (a re-proposal) do not count.
	proposed_at BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX standing_name ON standing (kind, name) WHERE status <> 'deleted';
CREATE INDEX standing_status ON standing (status);

CREATE TABLE standing_approvals (
	id TEXT PRIMARY KEY,
	standing_id TEXT NOT NULL REFERENCES standing (id),
	approver_id TEXT NOT NULL,
	approver_name TEXT NOT NULL,
	decision TEXT NOT NULL,
	comment TEXT NOT NULL DEFAULT '',
	binding TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX standing_approvals_standing ON standing_approvals (standing_id, created_at);

-- What a standing request did: a schedule's tick (key: the tick's time)
-- or a trigger's delivery (key: the alert's dedup key). The primary key
-- makes one outcome per tick or alert across replicas and restarts.
CREATE TABLE standing_events (
	standing_id TEXT NOT NULL REFERENCES standing (id),
	event_key TEXT NOT NULL,
	at BIGINT NOT NULL,
	outcome TEXT NOT NULL,
	run_id TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (standing_id, event_key)
);
CREATE INDEX standing_events_at ON standing_events (standing_id, at);

-- The standing request a run was started under, if any.
ALTER TABLE runs ADD COLUMN standing_id TEXT NOT NULL DEFAULT '';
