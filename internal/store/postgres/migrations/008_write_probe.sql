-- One row that readiness checks write when a write has failed (a full
-- disk, a read-only failover target), to learn whether the database takes
-- writes again. Not state: no audit event, nothing reads it.
CREATE TABLE airlock_write_probe (
	id INTEGER PRIMARY KEY,
	at BIGINT NOT NULL
);
