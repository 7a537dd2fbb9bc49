// The nova-network era proxy APIs, answered from the network-adapter below 2.36 and gone (404)
// from 2.36 (all at once, as Nova deprecated them). os-virtual-interfaces is 400 below 2.44 (not
// supported with Neutron) and 404 from 2.44.
import type { MessageShape } from "@bufbuild/protobuf";
import type { NetworkSchema } from "@stratus/contracts/network/v1";
import { isStratusError, StratusError } from "@stratus/runtime";
import type { ApiDeps } from "../deps.js";
import type { RestRequest, Router } from "../http/router.js";

type Network = MessageShape<typeof NetworkSchema>;

async function networkView(deps: ApiDeps, n: Network) {
  const subnets = n.subnetIds.length ? (await deps.network.listSubnets({ networkId: n.id })).subnets : [];
  const v4 = subnets.find((s) => s.ipVersion === 4);
  const v6 = subnets.find((s) => s.ipVersion === 6);
  return {
    id: n.id,
    label: n.name,
    cidr: v4?.cidr ?? null,
    cidr_v6: v6?.cidr ?? null,
    gateway: v4?.gatewayIp || null,
    gateway_v6: v6?.gatewayIp || null,
    project_id: n.projectId || null,
    mtu: n.mtu || null,
    multi_host: false,
    share_address: n.shared,
  };
}

async function visibleNetworks(req: RestRequest, deps: ApiDeps): Promise<Network[]> {
  return (await deps.network.listAvailableNetworks({ projectId: req.caller.projectId })).networks;
}

export function networkProxyRoutes(router: Router, deps: ApiDeps): void {
  const gate = { until: "proxyApisRemoved" } as const;
  for (const collection of ["os-networks", "os-tenant-networks"]) {
    router.add(
      "GET",
      `/${collection}`,
      async (req) => {
        const nets = await visibleNetworks(req, deps);
        return { status: 200, body: { networks: await Promise.all(nets.map((n) => networkView(deps, n))) } };
      },
      gate,
    );
    router.add(
      "GET",
      `/${collection}/:id`,
      async (req) => {
        const id = req.params.id!;
        const n = (await visibleNetworks(req, deps)).find((x) => x.id === id);
        if (!n) throw new StratusError("not_found", `Network ${id} could not be found.`);
        return { status: 200, body: { network: await networkView(deps, n) } };
      },
      gate,
    );
  }
  router.add(
    "GET",
    "/os-floating-ip-pools",
    async () => {
      const { networks } = await deps.network.listNetworks({ routerExternal: true });
      return { status: 200, body: { floating_ip_pools: networks.map((n) => ({ name: n.name || n.id })) } };
    },
    gate,
  );
  // Stratus has no floating IPs: the list is truthfully empty.
  router.add("GET", "/os-floating-ips", () => ({ status: 200, body: { floating_ips: [] } }), gate);

  router.add(
    "GET",
    "/servers/:id/os-virtual-interfaces",
    async (req) => {
      try {
        await deps.conductor.getServer({ id: req.params.id! });
      } catch (err) {
        if (isStratusError(err, "not_found") || isStratusError(err, "invalid_input")) {
          throw new StratusError("not_found", `Instance ${req.params.id} could not be found.`);
        }
        throw err;
      }
      throw new StratusError("invalid_input", "Listing virtual interfaces is not supported by this cloud.");
    },
    { until: "virtualInterfacesRemoved" },
  );
}
