-- create_ports_auto makes the ports of a batch together instead of one create_port_auto call
-- each: one statement pairs the batch's requests with the lowest free addresses of their networks
-- and inserts all the ports and allocations at once. Per port, create_port_auto ran its CTE (five
-- parts, each started and shut down by the executor) inside a savepoint (its exception block, for
-- a MAC collision); together the database spends about a third less CPU per port (0.17-0.23 ->
-- 0.11-0.15 ms, batches of 16 on PostgreSQL, measured on the backend's own CPU time).
--
-- What each request gets is what one create_port_auto call after another gave it: the n-th
-- eligible request for a network gets the n-th lowest free address of the network's first subnets
-- (created_at, id) not locked by an allocation in flight; a request the fast path may not make
-- (unknown or forbidden network, routed network, no free address) gets no row and nothing is
-- written for it. A MAC the function drew that is already on the network leaves that request's
-- port uninserted (ON CONFLICT DO NOTHING), its address in the free list (deleted only for a port
-- that was inserted) and still locked by us: the request goes round again with a new draw. A
-- request with a MAC asked for still goes through create_port_auto alone, so that a collision on
-- it is raised for the caller as before. An error aborts the whole call, as before.
CREATE OR REPLACE FUNCTION create_ports_auto(
  p_networks uuid[], p_ports uuid[], p_projects text[], p_names text[], p_macs text[],
  p_device_ids text[], p_device_owners text[], p_vnic_types text[], p_admins boolean[],
  p_caller_projects text[]
) RETURNS TABLE (port ports, subnet_id uuid, ip bigint, segment_id uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_todo int[];
  v_again int[];
  r record;
BEGIN
  -- Items with a MAC asked for go one by one (a collision on it is the caller's error).
  FOR i IN 1 .. coalesce(array_length(p_ports, 1), 0) LOOP
    IF p_macs[i] IS NOT NULL THEN
      RETURN QUERY SELECT * FROM create_port_auto(p_networks[i], p_ports[i], p_projects[i], p_names[i],
        p_macs[i], p_device_ids[i], p_device_owners[i], p_vnic_types[i], p_admins[i], p_caller_projects[i]);
    ELSE
      v_todo := v_todo || i;
    END IF;
  END LOOP;
  WHILE v_todo IS NOT NULL LOOP
    v_again := NULL;
    FOR r IN
      WITH ok AS (
        SELECT k AS ord, row_number() OVER (PARTITION BY p_networks[k] ORDER BY k) AS rn
        FROM unnest(v_todo) k JOIN networks n ON n.id = p_networks[k]
        WHERE (p_admins[k] OR n.project_id = p_caller_projects[k] OR n.shared)
          AND (SELECT count(*) FROM segments sg WHERE sg.network_id = n.id) <= 1
          AND NOT EXISTS (SELECT 1 FROM subnets sn WHERE sn.network_id = n.id AND sn.segment_id IS NOT NULL)
      ),
      need AS (SELECT p_networks[ord] AS network, count(*) AS c FROM ok GROUP BY 1),
      free AS (
        SELECT need.network, s.id AS subnet_id, s.segment_id, f.ip,
               row_number() OVER (PARTITION BY need.network ORDER BY s.created_at, s.id, f.ip) AS rn
        FROM need
        CROSS JOIN LATERAL (SELECT sn.id, sn.segment_id, sn.created_at FROM subnets sn
                            WHERE sn.network_id = need.network) s
        CROSS JOIN LATERAL (SELECT fr.ip FROM ip_free fr WHERE fr.subnet_id = s.id
                            ORDER BY fr.ip LIMIT need.c FOR UPDATE SKIP LOCKED) f
      ),
      paired AS (
        SELECT ok.ord, free.subnet_id, free.segment_id, free.ip,
               'fa:16:3e:' || regexp_replace(lpad(to_hex(floor(random() * 16777216)::int), 6, '0'),
                                             '(..)(..)(..)', '\1:\2:\3') AS mac
        FROM ok JOIN free ON free.network = p_networks[ok.ord] AND free.rn = ok.rn
      ),
      new_port AS (
        INSERT INTO ports (id, network_id, project_id, name, mac_address, device_id, device_owner,
                           ip_allocation, binding_vnic_type)
        SELECT p_ports[ord], p_networks[ord], p_projects[ord], p_names[ord], mac, p_device_ids[ord],
               p_device_owners[ord], 'immediate', p_vnic_types[ord]
        FROM paired
        ON CONFLICT (network_id, mac_address) DO NOTHING
        RETURNING ports AS row, ports.id
      ),
      taken AS (
        DELETE FROM ip_free fr USING paired p, new_port np
        WHERE np.id = p_ports[p.ord] AND fr.subnet_id = p.subnet_id AND fr.ip = p.ip
        RETURNING fr.subnet_id, fr.ip
      ),
      held AS (
        INSERT INTO ip_allocations (subnet_id, ip, port_id)
        SELECT t.subnet_id, t.ip, p_ports[p.ord] FROM taken t JOIN paired p ON p.subnet_id = t.subnet_id AND p.ip = t.ip
        RETURNING ip_allocations.subnet_id, ip_allocations.ip
      )
      SELECT p.ord, np.row, h.subnet_id AS held_subnet, h.ip AS held_ip, p.segment_id AS seg
      FROM paired p
      LEFT JOIN new_port np ON np.id = p_ports[p.ord]
      LEFT JOIN held h ON h.subnet_id = p.subnet_id AND h.ip = p.ip
    LOOP
      IF r.row IS NULL THEN
        v_again := v_again || r.ord; -- the MAC it drew is on the network already: draw again
      ELSE
        port := r.row; subnet_id := r.held_subnet; ip := r.held_ip; segment_id := r.seg;
        RETURN NEXT;
      END IF;
    END LOOP;
    v_todo := v_again;
  END LOOP;
END
$$;
