-- An API token may be limited to some actions, procedures and
-- environments (comma-separated entries; empty: what policy allows its
-- owner). Checked in addition to policy.
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT '';
