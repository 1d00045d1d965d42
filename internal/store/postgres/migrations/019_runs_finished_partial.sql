-- Only finished runs are in the index of when runs finished: a run was
-- entered at its request (with no time) and moved at its end, two more
-- pages written per run. Output pruning asks for finished runs only.
DROP INDEX runs_finished;
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
