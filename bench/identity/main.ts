// bench/identity: token issue per second by password and by token (through the Keystone REST API
// of a real identity process), and token validation per second in one process with
// LocalTokenValidator (keys and revocations from that identity over RPC and NATS), and the api's
// REST edge authenticating requests with it.
//   npm run bench -- identity [--seconds 5] [--concurrency 8] [--tokens 1000]
import type { IncomingMessage } from "node:http";
import { parseArgs } from "node:util";
import { createLogger, EventBus } from "@stratus/runtime";
import { identityServiceSource, LocalTokenValidator } from "@stratus/runtime/auth";
import { startIdentity } from "@stratus/runtime/testing";
import { edgeAuthenticator } from "../../services/api/src/http/authenticate.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    concurrency: { type: "string", default: "8" },
    tokens: { type: "string", default: "1000" },
  },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const distinctTokens = Number(values.tokens);

const HASH_MEMORY_KIB = process.env.IDENTITY_PASSWORD_HASH_MEMORY_KIB ?? "19456";
const HASH_TIME_COST = process.env.IDENTITY_PASSWORD_HASH_TIME_COST ?? "2";
const id = await startIdentity({
  env: {
    LOG_LEVEL: "warn",
    IDENTITY_PASSWORD_HASH_MEMORY_KIB: HASH_MEMORY_KIB,
    IDENTITY_PASSWORD_HASH_TIME_COST: HASH_TIME_COST,
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
  },
});
const url = `${id.restUrl}/v3/auth/tokens`;
const scope = { project: { name: "admin", domain: { name: "Default" } } };

async function issue(body: unknown): Promise<string> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw new Error(`token issue: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  return res.headers.get("x-subject-token")!;
}

const byPassword = {
  auth: {
    identity: {
      methods: ["password"],
      password: { user: { name: "admin", domain: { name: "Default" }, password: id.adminPassword } },
    },
    scope,
  },
};

/** Calls fn from `concurrency` loops for `seconds`; the rate and latency percentiles. */
async function load(fn: () => Promise<unknown>) {
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await fn();
        latencies.push(performance.now() - t);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!.toFixed(1);
  return `${(latencies.length / seconds).toFixed(0)}/s  p50 ${at(0.5)} ms  p99 ${at(0.99)} ms  (${latencies.length} calls)`;
}

const logger = createLogger("bench", "warn");
const bus = new EventBus(await id.nats.connect("tools"), logger);
try {
  console.log(`identity bench: ${seconds} s per figure, ${concurrency} callers, 2 shared cores`);
  console.log(`password hash: argon2id m=${HASH_MEMORY_KIB} KiB, t=${HASH_TIME_COST}, p=1`);
  await issue(byPassword);
  console.log(`token issue, password method:  ${await load(() => issue(byPassword))}`);
  const parent = await issue(byPassword);
  const byToken = { auth: { identity: { methods: ["token"], token: { id: parent } }, scope } };
  console.log(`token issue, token method:     ${await load(() => issue(byToken))}`);

  const tokens: string[] = [];
  for (let i = 0; i < distinctTokens; i++) tokens.push(await issue(byToken));
  const validator = new LocalTokenValidator(identityServiceSource(id.rpcUrl, bus), { logger });
  await validator.start();
  // First sight of each token: signature verification and claims parsing.
  let t = performance.now();
  for (const token of tokens) await validator.validate(token);
  const firstMs = performance.now() - t;
  console.log(
    `validation, first sight (ES256 verify): ${((tokens.length / firstMs) * 1000).toFixed(0)}/s over ${tokens.length} distinct tokens`,
  );
  // Tokens already verified: expiry and revocation checks, in one loop (one core).
  let count = 0;
  t = performance.now();
  const end = t + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) await validator.validate(tokens[(count + i) % tokens.length]!);
    count += 1000;
  }
  const rate = (count / (performance.now() - t)) * 1000;
  console.log(
    `validation, known tokens (expiry + revocation checks): ${rate.toFixed(0)}/s (target >= 20,000/s)`,
  );
  // The api's REST edge as it authenticates a request (services/api/src/http/authenticate.ts):
  // the X-Auth-Token read, the validation above, the caller and its role check.
  const authenticate = edgeAuthenticator({
    validator,
    authUri: id.restUrl,
    insecureDevTokens: false,
    logger,
  });
  count = 0;
  t = performance.now();
  const edgeEnd = t + seconds * 1000;
  while (performance.now() < edgeEnd) {
    for (let i = 0; i < 1000; i++) {
      const req = { method: "GET", headers: { "x-auth-token": tokens[(count + i) % tokens.length]! } };
      await authenticate(req as unknown as IncomingMessage, "req-bench");
    }
    count += 1000;
  }
  console.log(
    `REST edge authenticate(), known tokens: ${((count / (performance.now() - t)) * 1000).toFixed(0)}/s`,
  );
  await validator.close();
} finally {
  await bus.close();
  await id.close();
}
