-- Attempts are separate records: a step's result and each output chunk
-- name the attempt that produced them, so a run started again after its
-- worker was lost shows both attempts, never one overwriting the other.
-- Steps stored before this migration were written at the end of the run
-- by its last attempt; output chunks before it are counted as attempt 1.
ALTER TABLE run_output ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;

CREATE TABLE run_steps_new (
	run_id TEXT NOT NULL REFERENCES runs (id),
	attempt INTEGER NOT NULL DEFAULT 1,
	node TEXT NOT NULL,
	step_index INTEGER NOT NULL,
	step TEXT NOT NULL,
	status TEXT NOT NULL,
	exit_code INTEGER NOT NULL DEFAULT -1,
	started_at BIGINT,
	finished_at BIGINT,
	PRIMARY KEY (run_id, attempt, node, step_index)
);
INSERT INTO run_steps_new (run_id, attempt, node, step_index, step, status, exit_code, started_at, finished_at)
	SELECT s.run_id, COALESCE((SELECT MAX(r.attempt, 1) FROM runs r WHERE r.id = s.run_id), 1), s.node, s.step_index,
		s.step, s.status, s.exit_code, s.started_at, s.finished_at
	FROM run_steps s;
DROP TABLE run_steps;
ALTER TABLE run_steps_new RENAME TO run_steps;
