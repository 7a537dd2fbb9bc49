-- The sharing providers of an aggregate, by index. The candidate search asks "which sharing
-- providers are in this aggregate" (a segment's IPV4_ADDRESS provider for its hosts): without an
-- index for it, every search listed every sharing provider of the cloud and its aggregates, a cost
-- that grew with the number of segments (100 segments: a third of a search for one segment's 10
-- hosts). provider_aggregates.shares mirrors resource_providers.shares, kept by the two triggers
-- below whatever writes the rows; the partial index holds only the sharing providers' memberships.
-- A sharing provider that is not a root (member_of through its root) is found by the second index.
ALTER TABLE provider_aggregates ADD COLUMN shares boolean NOT NULL DEFAULT false;
UPDATE provider_aggregates a SET shares = true FROM resource_providers p WHERE p.id = a.provider_id AND p.shares;
CREATE INDEX provider_aggregates_sharing ON provider_aggregates (aggregate_uuid, provider_id) WHERE shares;
CREATE INDEX resource_providers_sharing_child ON resource_providers (root_id) WHERE shares AND id <> root_id;

CREATE FUNCTION provider_aggregates_shares() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.shares := coalesce((SELECT p.shares FROM resource_providers p WHERE p.id = NEW.provider_id), false);
  RETURN NEW;
END
$$;
CREATE TRIGGER provider_aggregates_shares BEFORE INSERT OR UPDATE OF provider_id ON provider_aggregates
  FOR EACH ROW EXECUTE FUNCTION provider_aggregates_shares();

CREATE FUNCTION resource_providers_shares() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE provider_aggregates SET shares = NEW.shares WHERE provider_id = NEW.id;
  RETURN NULL;
END
$$;
CREATE TRIGGER resource_providers_shares AFTER UPDATE OF shares ON resource_providers
  FOR EACH ROW WHEN (OLD.shares IS DISTINCT FROM NEW.shares) EXECUTE FUNCTION resource_providers_shares();
