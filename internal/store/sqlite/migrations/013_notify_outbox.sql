-- Notifications. An outbox row for each audit event that notifies (or a
-- reminder the dispatcher makes), written in the transaction that
-- appends the event; deliveries, one per channel and target, made from
-- it by the dispatcher, which claims each under a lease.
CREATE TABLE notify_outbox (
	id TEXT PRIMARY KEY,
	event_seq BIGINT NOT NULL,
	type TEXT NOT NULL,
	subject TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	expanded_at BIGINT,
	lease_owner TEXT NOT NULL DEFAULT '',
	lease_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX notify_outbox_open ON notify_outbox (expanded_at, created_at);

CREATE TABLE notify_deliveries (
	id TEXT PRIMARY KEY,
	outbox_id TEXT NOT NULL,
	kind TEXT NOT NULL,
	channel TEXT NOT NULL,
	target TEXT NOT NULL,
	user_id TEXT NOT NULL DEFAULT '',
	-- the message as built when the entry was expanded (never a secret)
	message TEXT NOT NULL DEFAULT '{}',
	status TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_at BIGINT NOT NULL,
	last_error TEXT NOT NULL DEFAULT '',
	lease_owner TEXT NOT NULL DEFAULT '',
	lease_until BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL,
	delivered_at BIGINT,
	UNIQUE (outbox_id, channel, target)
);
CREATE INDEX notify_deliveries_due ON notify_deliveries (status, next_at);

-- What each person wants to hear of, and where. A missing row means the
-- default: the kinds addressed to the person, on every channel they can
-- be reached on.
CREATE TABLE notify_subscriptions (
	user_id TEXT NOT NULL,
	kind TEXT NOT NULL,
	channel TEXT NOT NULL,
	enabled BOOLEAN NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (user_id, kind, channel)
);
