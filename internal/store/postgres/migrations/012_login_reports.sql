-- Failed and throttled sign-ins are audited one by one only at the start
-- of a window per source address (login.audit_window); the rest of the
-- window is counted here, outside the audit log, and recorded as one
-- user.login_failures event when the window closes. A report with
-- attempts counted is deleted only in the transaction that appends that
-- event, so no attempt goes unrecorded.
CREATE TABLE login_reports (
	addr TEXT PRIMARY KEY,
	window_start BIGINT NOT NULL,
	failed INTEGER NOT NULL DEFAULT 0,
	throttled INTEGER NOT NULL DEFAULT 0,
	more_names INTEGER NOT NULL DEFAULT 0,
	first_at BIGINT,
	last_at BIGINT
);
CREATE INDEX login_reports_window ON login_reports (window_start);
-- The distinct usernames tried, up to a few per report.
CREATE TABLE login_report_names (
	addr TEXT NOT NULL,
	username TEXT NOT NULL,
	PRIMARY KEY (addr, username)
);
