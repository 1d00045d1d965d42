-- Creating users, adding group members and enabling users are under dual
-- control: one admin proposes, another approves.
CREATE TABLE user_changes (
	id TEXT PRIMARY KEY,
	kind TEXT NOT NULL,
	username TEXT NOT NULL,
	group_name TEXT NOT NULL DEFAULT '',
	display_name TEXT NOT NULL DEFAULT '',
	email TEXT NOT NULL DEFAULT '',
	groups TEXT NOT NULL DEFAULT '[]',
	status TEXT NOT NULL,
	author_id TEXT NOT NULL,
	author_name TEXT NOT NULL,
	user_id TEXT NOT NULL DEFAULT '',
	decided_by_id TEXT NOT NULL DEFAULT '',
	decided_by_name TEXT NOT NULL DEFAULT '',
	decision_comment TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	decided_at BIGINT
);
CREATE INDEX user_changes_status ON user_changes (status, created_at);

-- Who brought an account into being or granted it a group: for
-- separation of duties the two count as one person.
CREATE TABLE account_links (
	user_id TEXT NOT NULL,
	by_id TEXT NOT NULL,
	by_name TEXT NOT NULL,
	reason TEXT NOT NULL,
	event_id TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (user_id, by_id, reason)
);
CREATE INDEX account_links_by ON account_links (by_id);

-- Accounts created and memberships granted before dual control, as the
-- audit log recorded them (the system and the demo have no user ID).
INSERT INTO account_links (user_id, by_id, by_name, reason, event_id, created_at)
	SELECT subject, actor_id, actor_name, 'created by ' || actor_name, id, time FROM audit_events
	WHERE type = 'user.create' AND outcome = 'success' AND actor_id <> '' AND subject <> '' AND subject <> actor_id
	ON CONFLICT DO NOTHING;
INSERT INTO account_links (user_id, by_id, by_name, reason, event_id, created_at)
	SELECT json_extract(details, '$.user_id'), actor_id, actor_name, 'granted ' || COALESCE(json_extract(details, '$.group'), '') || ' by ' || actor_name, id, time FROM audit_events
	WHERE type = 'group.member_add' AND outcome = 'success' AND actor_id <> '' AND COALESCE(json_extract(details, '$.user_id'), '') NOT IN ('', actor_id)
	ON CONFLICT DO NOTHING;
