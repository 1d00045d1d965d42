-- A run's events are read by subject; the index on time was never
-- queried.
DROP INDEX audit_events_time;
CREATE INDEX audit_events_subject ON audit_events (subject, seq);
