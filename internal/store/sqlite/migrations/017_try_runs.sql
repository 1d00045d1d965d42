-- A try run executes a proposed, unreviewed version in a try
-- environment; it is marked so everywhere and never counts as evidence
-- of an approved change.
ALTER TABLE runs ADD COLUMN try BOOLEAN NOT NULL DEFAULT FALSE;
