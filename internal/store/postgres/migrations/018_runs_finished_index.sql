-- Output pruning finds finished runs by when they finished: without an
-- index it read every run at each pass.
CREATE INDEX runs_finished ON runs (finished_at);
