-- A host whose agent stopped cleanly (its last heartbeat said so) is down until it beats again.
-- Additive: a conductor of the previous version neither reads nor writes it.
ALTER TABLE compute_services ADD COLUMN stopped boolean NOT NULL DEFAULT false;
