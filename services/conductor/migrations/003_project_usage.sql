-- What each project's live (not deleted) servers hold, kept by triggers on servers so that the
-- quota check reads one row instead of summing every server of the project under the quota lock.
-- Counts are exactly those of `SELECT count(*), sum(vcpus), sum(ram) FROM servers WHERE NOT deleted`.
CREATE TABLE project_usage (
  project_id text PRIMARY KEY,
  instances bigint NOT NULL DEFAULT 0,
  cores bigint NOT NULL DEFAULT 0,
  ram bigint NOT NULL DEFAULT 0
);

INSERT INTO project_usage (project_id, instances, cores, ram)
SELECT project_id, count(*), coalesce(sum((flavor->>'vcpus')::int), 0), coalesce(sum((flavor->>'ramMb')::int), 0)
FROM servers WHERE NOT deleted GROUP BY project_id;

CREATE FUNCTION servers_track_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND NOT OLD.deleted THEN
    UPDATE project_usage SET instances = instances - 1,
      cores = cores - (OLD.flavor->>'vcpus')::int, ram = ram - (OLD.flavor->>'ramMb')::int
    WHERE project_id = OLD.project_id;
  END IF;
  IF TG_OP <> 'DELETE' AND NOT NEW.deleted THEN
    INSERT INTO project_usage AS u (project_id, instances, cores, ram)
    VALUES (NEW.project_id, 1, (NEW.flavor->>'vcpus')::int, (NEW.flavor->>'ramMb')::int)
    ON CONFLICT (project_id) DO UPDATE SET instances = u.instances + 1,
      cores = u.cores + excluded.cores, ram = u.ram + excluded.ram;
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER servers_usage_insert_delete AFTER INSERT OR DELETE ON servers
  FOR EACH ROW EXECUTE FUNCTION servers_track_usage();
CREATE TRIGGER servers_usage_update AFTER UPDATE OF deleted, flavor, project_id ON servers
  FOR EACH ROW
  WHEN (OLD.deleted IS DISTINCT FROM NEW.deleted OR OLD.flavor IS DISTINCT FROM NEW.flavor
        OR OLD.project_id IS DISTINCT FROM NEW.project_id)
  EXECUTE FUNCTION servers_track_usage();
