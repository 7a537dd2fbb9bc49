// Network fixtures shared by the cross-service tests.
import type { NetworkService } from "@stratus/contracts/network/v1";
import { defaultRoles, runWithContext, type serviceClient, userContext } from "@stratus/runtime";

type NetworkClient = ReturnType<typeof serviceClient<typeof NetworkService>>;

const ADMIN = () => userContext({ userId: "admin", projectId: "admin", roles: defaultRoles(true) });

/** What `--nic auto` needs: a default external network and a default subnet pool. */
export async function createAutoPrerequisites(net: NetworkClient): Promise<void> {
  await runWithContext(ADMIN(), async () => {
    const { network } = await net.createNetwork({
      name: "public",
      projectId: "admin",
      routerExternal: true,
      isDefault: true,
      segments: [{ name: "public", networkType: "flat", physicalNetwork: "physnet-public" }],
    });
    await net.createSubnet({
      networkId: network!.id,
      projectId: "admin",
      cidr: "203.0.113.0/24",
      ipVersion: 4,
    });
    await net.createSubnetPool({
      pool: {
        name: "default-pool",
        projectId: "admin",
        prefixes: ["10.128.0.0/16"],
        defaultPrefixlen: 26,
        minPrefixlen: 24,
        maxPrefixlen: 28,
        isDefault: true,
        shared: true,
        ipVersion: 4,
      },
    });
  });
}
