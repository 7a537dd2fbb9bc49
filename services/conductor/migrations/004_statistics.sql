-- Planner statistics only for the columns a query filters, joins or sorts on. The conductor
-- refreshes statistics as the servers table grows (Servers.refreshStatistics), and most of
-- each ANALYZE went to the wide JSON and text columns that no query filters on: requests,
-- flavors, addresses, ports, selections, user data.
ALTER TABLE build_requests ALTER COLUMN request SET STATISTICS 0;
ALTER TABLE servers
  ALTER COLUMN flavor SET STATISTICS 0,
  ALTER COLUMN addresses SET STATISTICS 0,
  ALTER COLUMN metadata SET STATISTICS 0,
  ALTER COLUMN user_data SET STATISTICS 0,
  ALTER COLUMN description SET STATISTICS 0;
ALTER TABLE server_builds
  ALTER COLUMN requested SET STATISTICS 0,
  ALTER COLUMN ports SET STATISTICS 0,
  ALTER COLUMN selected SET STATISTICS 0,
  ALTER COLUMN alternates SET STATISTICS 0,
  ALTER COLUMN failed_hosts SET STATISTICS 0,
  ALTER COLUMN fault_message SET STATISTICS 0,
  ALTER COLUMN fault_details SET STATISTICS 0;
