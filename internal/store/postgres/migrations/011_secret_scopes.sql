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
		SELECT json_agg(DISTINCT p.name ORDER BY p.name)::text
		FROM procedure_versions v
		JOIN procedures p ON p.id = v.procedure_id
		CROSS JOIN LATERAL jsonb_array_elements(COALESCE(v.definition::jsonb -> 'steps', '[]'::jsonb)) AS st(step)
		CROSS JOIN LATERAL jsonb_each_text(COALESCE(st.step -> 'secrets', '{}'::jsonb)) AS ref(env, name)
		WHERE v.status = 'approved' AND ref.name = secrets.name), '[]'),
	scope_updated_at = (EXTRACT(EPOCH FROM now()) * 1000000)::BIGINT,
	scope_updated_by = '(upgrade)';
