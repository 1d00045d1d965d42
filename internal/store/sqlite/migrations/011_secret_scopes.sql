-- Each secret says which procedures may name it in a step's secrets:
-- those owned by scope_teams, and those named in scope_procedures (a
-- trailing '*' matches a prefix). Both empty: no procedure may; the
-- secret can still be a node's SSH credential.
--
-- Secrets stored before this migration were usable by any procedure. The
-- upgrade keeps exactly what was in service working, nothing more: each
-- is scoped to the procedures whose approved (active) version names it at
-- this moment, and to nothing when none does (node credentials among
-- them). scope_updated_by '(upgrade)' marks scopes set here.
ALTER TABLE secrets ADD COLUMN scope_teams TEXT NOT NULL DEFAULT '[]';
ALTER TABLE secrets ADD COLUMN scope_procedures TEXT NOT NULL DEFAULT '[]';
ALTER TABLE secrets ADD COLUMN scope_updated_at BIGINT;
ALTER TABLE secrets ADD COLUMN scope_updated_by TEXT NOT NULL DEFAULT '';

UPDATE secrets SET
	scope_procedures = COALESCE((
		SELECT json_group_array(u.name ORDER BY u.name) FROM (
			SELECT DISTINCT p.name AS name
			FROM procedure_versions v
			JOIN procedures p ON p.id = v.procedure_id,
				json_each(v.definition, '$.steps') AS st,
				json_each(st.value, '$.secrets') AS ref
			WHERE v.status = 'approved' AND ref.value = secrets.name
		) AS u), '[]'),
	scope_updated_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000000,
	scope_updated_by = '(upgrade)';
