-- CreatePort's common case (an automatic address on a network that is not routed) as one function
-- call: one round trip, run on its own (autocommit). PL/pgSQL keeps the statement's plan per
-- connection, which saves most of the database's CPU per port (parsing and planning the CTE cost
-- more than running it). The caller is createPortsFast in src/core/ports.ts; when this returns no
-- row, nothing was written and the caller runs the full path in a transaction.
--
-- The network must exist, be usable by the caller (admin, own project or shared) and not be routed
-- (at most one segment, no segment-bound subnet). The address is the lowest free one of the first
-- subnet (created_at, id) that has one not locked by an allocation in flight (FOR UPDATE SKIP
-- LOCKED). The data-modifying parts depend on each other's rows: either the address leaves the
-- free list AND the port and its ip_allocations row are inserted, or nothing happens; an error (a
-- random MAC already on the network, a concurrent network delete) aborts the whole call. An address
-- still cannot be held twice: that is the primary key of ip_allocations.
CREATE FUNCTION create_port_auto(
  p_network uuid, p_port uuid, p_project text, p_name text, p_mac text, p_device_id text,
  p_device_owner text, p_vnic_type text, p_admin boolean, p_caller_project text
) RETURNS TABLE (port ports, subnet_id uuid, ip bigint, segment_id uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH net AS (
    SELECT n.id FROM networks n
    WHERE n.id = p_network AND (p_admin OR n.project_id = p_caller_project OR n.shared)
      AND (SELECT count(*) FROM segments sg WHERE sg.network_id = n.id) <= 1
      AND NOT EXISTS (SELECT 1 FROM subnets sn WHERE sn.network_id = n.id AND sn.segment_id IS NOT NULL)
  ),
  pick AS (
    SELECT s.id AS subnet_id, s.segment_id, f.ip
    FROM (SELECT sn.id, sn.segment_id, sn.created_at FROM subnets sn JOIN net ON sn.network_id = net.id
          ORDER BY sn.created_at, sn.id) s
    CROSS JOIN LATERAL (
      SELECT fr.ip FROM ip_free fr WHERE fr.subnet_id = s.id ORDER BY fr.ip LIMIT 1 FOR UPDATE SKIP LOCKED
    ) f
    LIMIT 1
  ),
  taken AS (
    DELETE FROM ip_free fr USING pick WHERE fr.subnet_id = pick.subnet_id AND fr.ip = pick.ip
    RETURNING fr.subnet_id, fr.ip
  ),
  new_port AS (
    INSERT INTO ports (id, network_id, project_id, name, mac_address, device_id, device_owner,
                       ip_allocation, binding_vnic_type)
    SELECT p_port, p_network, p_project, p_name, p_mac, p_device_id, p_device_owner, 'immediate', p_vnic_type
    FROM taken
    RETURNING ports AS row, ports.id
  ),
  held AS (
    INSERT INTO ip_allocations (subnet_id, ip, port_id)
    SELECT taken.subnet_id, taken.ip, new_port.id FROM taken, new_port
    RETURNING ip_allocations.subnet_id, ip_allocations.ip
  )
  SELECT new_port.row, held.subnet_id, held.ip, pick.segment_id FROM new_port, held, pick;
END
$$;

-- Several of those in one call (one round trip, one commit) for the calls that arrive together:
-- each item is create_port_auto on its own (later items see the addresses earlier ones took). An
-- error in any item aborts them all; the caller then runs them one by one.
CREATE FUNCTION create_ports_auto(
  p_networks uuid[], p_ports uuid[], p_projects text[], p_names text[], p_macs text[],
  p_device_ids text[], p_device_owners text[], p_vnic_types text[], p_admins boolean[],
  p_caller_projects text[]
) RETURNS TABLE (port ports, subnet_id uuid, ip bigint, segment_id uuid)
LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. coalesce(array_length(p_ports, 1), 0) LOOP
    RETURN QUERY SELECT * FROM create_port_auto(p_networks[i], p_ports[i], p_projects[i], p_names[i],
      p_macs[i], p_device_ids[i], p_device_owners[i], p_vnic_types[i], p_admins[i], p_caller_projects[i]);
  END LOOP;
END
$$;
