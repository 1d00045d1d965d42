-- Attempts are separate records: a step's result and each output chunk
-- name the attempt that produced them, so a run started again after its
-- worker was lost shows both attempts, never one overwriting the other.
-- Steps stored before this migration were written at the end of the run
-- by its last attempt; output chunks before it are counted as attempt 1.
ALTER TABLE run_output ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE run_steps ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
UPDATE run_steps s SET attempt = GREATEST(r.attempt, 1) FROM runs r WHERE r.id = s.run_id;
ALTER TABLE run_steps DROP CONSTRAINT run_steps_pkey;
ALTER TABLE run_steps ADD PRIMARY KEY (run_id, attempt, node, step_index);
