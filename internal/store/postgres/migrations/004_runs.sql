-- Inventory, secrets and runs.
CREATE TABLE nodes (
	name TEXT PRIMARY KEY,
	address TEXT NOT NULL DEFAULT '',
	port INTEGER NOT NULL DEFAULT 22,
	ssh_user TEXT NOT NULL DEFAULT '',
	environment TEXT NOT NULL,
	tags TEXT NOT NULL DEFAULT '[]',
	attributes TEXT NOT NULL DEFAULT '{}',
	host_key TEXT NOT NULL DEFAULT '',
	credential TEXT NOT NULL DEFAULT '',
	transport TEXT NOT NULL DEFAULT 'ssh',
	source TEXT NOT NULL DEFAULT 'api',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

CREATE TABLE secrets (
	name TEXT PRIMARY KEY,
	ciphertext BYTEA NOT NULL,
	key_id TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	updated_by TEXT NOT NULL DEFAULT ''
);

-- A run row is also its queue entry: status queued means waiting for a
-- worker; claiming is one UPDATE from queued to running.
CREATE TABLE runs (
	id TEXT PRIMARY KEY,
	procedure_id TEXT NOT NULL REFERENCES procedures (id),
	procedure_name TEXT NOT NULL,
	version_id TEXT NOT NULL,
	digest TEXT NOT NULL,
	environment TEXT NOT NULL,
	params TEXT NOT NULL DEFAULT '{}',
	secret_params BYTEA,
	requester_id TEXT NOT NULL,
	requester_name TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	ticket TEXT NOT NULL DEFAULT '',
	status TEXT NOT NULL,
	targets TEXT NOT NULL DEFAULT '[]',
	lock_key TEXT NOT NULL DEFAULT '',
	approvals_required INTEGER NOT NULL DEFAULT 0,
	binding TEXT NOT NULL,
	idempotent BOOLEAN NOT NULL DEFAULT FALSE,
	idempotency_key TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	expires_at BIGINT,
	queued_at BIGINT,
	started_at BIGINT,
	finished_at BIGINT,
	heartbeat_at BIGINT,
	worker_id TEXT NOT NULL DEFAULT '',
	attempt INTEGER NOT NULL DEFAULT 0,
	cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
	error TEXT NOT NULL DEFAULT '',
	output_bytes BIGINT NOT NULL DEFAULT 0,
	output_truncated BOOLEAN NOT NULL DEFAULT FALSE,
	output_digest TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_status ON runs (status, queued_at);
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_procedure ON runs (procedure_name, created_at);
CREATE UNIQUE INDEX runs_idempotency ON runs (requester_id, idempotency_key) WHERE idempotency_key <> '';

CREATE TABLE run_locks (
	lock_key TEXT PRIMARY KEY,
	run_id TEXT NOT NULL
);

CREATE TABLE run_approvals (
	id TEXT PRIMARY KEY,
	run_id TEXT NOT NULL REFERENCES runs (id),
	approver_id TEXT NOT NULL,
	approver_name TEXT NOT NULL,
	decision TEXT NOT NULL,
	comment TEXT NOT NULL DEFAULT '',
	binding TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	UNIQUE (run_id, approver_id)
);

CREATE TABLE run_nodes (
	run_id TEXT NOT NULL REFERENCES runs (id),
	node TEXT NOT NULL,
	status TEXT NOT NULL,
	exit_code INTEGER NOT NULL DEFAULT -1,
	error TEXT NOT NULL DEFAULT '',
	started_at BIGINT,
	finished_at BIGINT,
	PRIMARY KEY (run_id, node)
);

CREATE TABLE run_steps (
	run_id TEXT NOT NULL REFERENCES runs (id),
	node TEXT NOT NULL,
	step_index INTEGER NOT NULL,
	step TEXT NOT NULL,
	status TEXT NOT NULL,
	exit_code INTEGER NOT NULL DEFAULT -1,
	started_at BIGINT,
	finished_at BIGINT,
	PRIMARY KEY (run_id, node, step_index)
);

CREATE TABLE run_output (
	run_id TEXT NOT NULL REFERENCES runs (id),
	seq BIGINT NOT NULL,
	node TEXT NOT NULL,
	stream TEXT NOT NULL,
	data BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (run_id, seq)
);
