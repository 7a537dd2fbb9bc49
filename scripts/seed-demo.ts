// Seeds the small demo cloud that `npm start` ends with, through the network-adapter's public RPCs
// (the same calls an operator would make), as the cloud's admin user (IDENTITY_URL, the password
// in ADMIN_PASSWORD_FILE). Idempotent: what already exists is left as it is.
//
//   provider-routed  shared, routed: segment rack1 (vlan 101 on physnet-rack1, 10.1.0.0/24)
//                                    segment rack2 (vlan 102 on physnet-rack2, 10.2.0.0/24)
//   public           router:external, is_default (flat on physnet-public, 203.0.113.0/24)
//   default-pool     the default subnet pool (10.128.0.0/16, /26 per project) for --nic auto
//
// The compute agent maps hosts rack1-* to physnet-rack1 and rack2-* to physnet-rack2
// (COMPUTE_PHYSNETS), so each rack's hosts take their addresses from their own segment.
import { NetworkService } from "@stratus/contracts/network/v1";
import { createLogger, serviceClient } from "@stratus/runtime";
import { KeystoneAdmin, keystoneV3Url, loginAsUser, readPasswordFile } from "@stratus/runtime/auth";

const net = serviceClient(NetworkService, process.env.NETWORK_URL ?? "http://127.0.0.1:9103");

async function retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= 20) throw err;
      if (i === 0) console.log(`${what}: waiting for the network-adapter (${(err as Error).message})`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function ensureNetwork(
  name: string,
  spec: Parameters<typeof net.createNetwork>[0],
  subnets: { segment?: string; cidr: string; name: string }[],
) {
  const existing = (await net.listNetworks({})).networks.find((n) => n.name === name);
  if (existing) {
    console.log(`network ${name} exists (${existing.id})`);
    return existing;
  }
  const { network } = await net.createNetwork({ ...spec, name });
  if (!network) throw new Error(`network ${name} was not returned`);
  for (const s of subnets) {
    const segmentId = s.segment ? network.segments.find((g) => g.name === s.segment)?.id : "";
    const { subnet } = await net.createSubnet({
      networkId: network.id,
      segmentId: segmentId ?? "",
      name: s.name,
      cidr: s.cidr,
      ipVersion: 4,
      enableDhcp: true,
    });
    console.log(`  subnet ${s.name} ${subnet?.cidr} ${segmentId ? `on segment ${s.segment}` : ""}`);
  }
  console.log(`network ${name} created (${network.id})`);
  return network;
}

{
  const passwordFile = process.env.ADMIN_PASSWORD_FILE;
  if (!passwordFile) throw new Error("ADMIN_PASSWORD_FILE: the admin's password file is needed");
  const identityUrl = process.env.IDENTITY_URL ?? "http://127.0.0.1:5000";
  const password = readPasswordFile(passwordFile);
  await loginAsUser({
    identityUrl,
    user: "admin",
    password,
    project: "admin",
    logger: createLogger("seed", "warn"),
  });
  // The shared networks belong to the admin project (its id in the identity).
  const adminProject = await new KeystoneAdmin(keystoneV3Url(identityUrl), {
    user: "admin",
    password,
    project: "admin",
  }).ensure("projects", "admin");
  await retry("seed", () => net.listNetworks({}));

  await ensureNetwork(
    "provider-routed",
    {
      projectId: adminProject,
      shared: true,
      segments: [
        { name: "rack1", networkType: "vlan", physicalNetwork: "physnet-rack1", segmentationId: 101 },
        { name: "rack2", networkType: "vlan", physicalNetwork: "physnet-rack2", segmentationId: 102 },
      ],
    },
    [
      { name: "rack1-v4", segment: "rack1", cidr: "10.1.0.0/24" },
      { name: "rack2-v4", segment: "rack2", cidr: "10.2.0.0/24" },
    ],
  );
  await ensureNetwork(
    "public",
    {
      projectId: adminProject,
      routerExternal: true,
      isDefault: true,
      segments: [{ name: "public", networkType: "flat", physicalNetwork: "physnet-public" }],
    },
    [{ name: "public-v4", cidr: "203.0.113.0/24" }],
  );
  const pools = (await net.listSubnetPools({})).pools;
  if (!pools.some((p) => p.name === "default-pool")) {
    await net.createSubnetPool({
      pool: {
        name: "default-pool",
        projectId: adminProject,
        prefixes: ["10.128.0.0/16"],
        defaultPrefixlen: 26,
        minPrefixlen: 24,
        maxPrefixlen: 28,
        isDefault: true,
        shared: true,
        ipVersion: 4,
      },
    });
    console.log("subnet pool default-pool created (10.128.0.0/16, /26 per project)");
  } else {
    console.log("subnet pool default-pool exists");
  }

  console.log("demo cloud ready");
}
// The client keeps its HTTP/2 session open; the seed is done.
process.exit(0);
