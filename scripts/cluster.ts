// `npm run cluster`: Stratus as a small cloud on this machine, for benchmarks and failure drills —
// a 3-node NATS cluster, two replicas of the identity and of each control-plane service on
// PostgreSQL (127.0.0.1:5432, temporary databases), ten compute-agent processes of ten hosts each,
// the demo networks seeded. Ctrl-C stops it and drops the databases.
//   CLUSTER_REPLICAS (2), CLUSTER_AGENTS (10), CLUSTER_HOSTS_PER_AGENT (10), CLUSTER_NATS_NODES (3)
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot, startCluster } from "@stratus/runtime/testing";

const number = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`${name} must be a positive integer`);
    process.exit(2);
  }
  return v;
};
const replicas = number("CLUSTER_REPLICAS", 2);
const agents = number("CLUSTER_AGENTS", 10);
const hostsPerAgent = number("CLUSTER_HOSTS_PER_AGENT", 10);
const natsNodes = number("CLUSTER_NATS_NODES", 3);

const started = Date.now();
console.log(
  `starting ${natsNodes} NATS nodes, ${replicas} replicas of each service, ${agents} agents × ${hostsPerAgent} hosts …`,
);
const cluster = await startCluster({ replicas, agents, hostsPerAgent, natsNodes });
const stop = async () => {
  console.log("stopping …");
  await cluster.close();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

// The demo networks (scripts/seed-demo.ts): a routed provider network with one segment per rack.
const secrets = mkdtempSync(join(tmpdir(), "stratus-cluster-admin-"));
const adminFile = join(secrets, "admin.password");
writeFileSync(adminFile, `${cluster.identity.adminPassword}\n`, { mode: 0o600 });
const seed = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "scripts", "seed-demo.ts")], {
  cwd: repoRoot,
  env: {
    ...process.env,
    NETWORK_URL: cluster.replicas["network-adapter"][0]!.url,
    IDENTITY_URL: cluster.identity.restUrl,
    ADMIN_PASSWORD_FILE: adminFile,
  },
  stdio: "inherit",
});
const code = await new Promise((r) => seed.once("exit", r));
if (code !== 0) console.log(`seeding failed (exit ${code}); the cluster stays up`);

const lines = [
  `Stratus cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  `  NATS           ${cluster.nats.url}`,
  `  identity       ${cluster.identity.restUrl}/v3   (admin's password in ${adminFile})`,
  ...Array.from({ length: replicas }, (_, i) => `  compute API ${i}  ${cluster.apiUrl(i)}/v2.1`),
  ...(["scheduler", "network-adapter", "conductor", "api"] as const).map(
    (n) => `  ${n.padEnd(16)}${cluster.replicas[n].map((p) => p.url).join("  ")}`,
  ),
  `  agents         ${cluster.agents.length} processes: ${cluster.agentHosts.slice(0, 2).join(", ")}, …`,
  "Press Ctrl-C to stop.",
];
console.log(lines.join("\n"));
