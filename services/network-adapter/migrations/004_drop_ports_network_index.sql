-- ports_network (network_id) duplicated the leading column of the unique key (network_id,
-- mac_address), which serves every look-up by network as well. Each port written (created, or
-- updated without HOT, as binding does when its page is full) paid one more index entry and its
-- WAL record for it.
DROP INDEX IF EXISTS ports_network;
