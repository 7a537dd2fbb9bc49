-- The scheduler's ordered search without member_of walks one class's inventories from the most
-- (or least) free down, checking each root until it has enough: the index gives that order with
-- its tie-break (provider id), so the walk stops after the first few qualifying roots instead of
-- checking every root of the cloud and sorting them (1,000 roots: 8 ms and 21,000 buffer hits
-- per call). Range look-ups by class and free amount use it as they used the index it replaces.
DROP INDEX IF EXISTS inventories_class_free;
CREATE INDEX inventories_class_free ON inventories (resource_class, free DESC, provider_id);
