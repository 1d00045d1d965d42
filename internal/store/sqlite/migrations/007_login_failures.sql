-- Failed logins, counted by every replica alike (the throttle used to be
-- per process). Rows are written with the failed-login audit event and
-- pruned past the throttle window.
CREATE TABLE login_failures (
	account TEXT NOT NULL,
	addr TEXT NOT NULL DEFAULT '',
	at BIGINT NOT NULL
);
CREATE INDEX login_failures_account ON login_failures (account, at);
CREATE INDEX login_failures_addr ON login_failures (addr, at);
