-- create_port_auto takes its address above the highest one the subnet holds, and from the lowest
-- free one only when none is free above it (as the adapter's other automatic allocations do:
-- ipam.ts, nextFreeSql). Each address taken leaves a dead entry in ip_free's index until a vacuum
-- runs, all of them below the highest held address; the search from the lowest address walked
-- every one of them for every port (73 buffer hits a port after 5,500 ports in bench/ipam, 112
-- after 21,100). In a new subnet the order is unchanged, lowest first. The rest of the function
-- is migration 003's.
CREATE OR REPLACE FUNCTION create_port_auto(
  p_network uuid, p_port uuid, p_project text, p_name text, p_mac text, p_device_id text,
  p_device_owner text, p_vnic_type text, p_admin boolean, p_caller_project text
) RETURNS TABLE (port ports, subnet_id uuid, ip bigint, segment_id uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_auto constant boolean := p_mac IS NULL;
  v_hex text;
  v_constraint text;
BEGIN
  LOOP
    IF v_auto THEN
      v_hex := lpad(to_hex(floor(random() * 16777216)::int), 6, '0');
      p_mac := 'fa:16:3e:' || substr(v_hex, 1, 2) || ':' || substr(v_hex, 3, 2) || ':' || substr(v_hex, 5, 2);
    END IF;
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
          CROSS JOIN LATERAL (SELECT coalesce(
            (SELECT nf.ip FROM ip_free nf WHERE nf.subnet_id = s.id
               AND nf.ip > (SELECT coalesce(max(nh.ip), 0) FROM ip_allocations nh WHERE nh.subnet_id = s.id)
               ORDER BY nf.ip LIMIT 1 FOR UPDATE SKIP LOCKED),
            (SELECT nf.ip FROM ip_free nf WHERE nf.subnet_id = s.id ORDER BY nf.ip LIMIT 1 FOR UPDATE SKIP LOCKED)
          ) AS ip) f
          WHERE f.ip IS NOT NULL
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
      -- The one row is emitted only after both inserts: a collision raises before anything is
      -- returned, so the retry cannot return a port twice.
      RETURN;
    EXCEPTION WHEN unique_violation THEN
      GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
      IF NOT v_auto OR v_constraint IS DISTINCT FROM 'ports_network_id_mac_address_key' THEN
        RAISE;
      END IF;
    END;
  END LOOP;
END
$$;
