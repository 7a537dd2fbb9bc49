#!/usr/bin/env node
// Watches servers build, live: the api's Server-Sent Events (GET /v2.1/stratus/server-events),
// one line per state change, reconnecting after a dropped connection from the last event seen
// (Last-Event-ID), so that no change is missed.
//   node scripts/watch.mjs [--watch <server id>] [--all-projects] [--url http://127.0.0.1:8774]
// The token is $OS_TOKEN (what the REST API takes as X-Auth-Token). With --watch it follows one
// server and exits when it is ACTIVE (0) or ERROR (1); without, it follows every server of the
// token's project (every project's with --all-projects, admin) until interrupted.
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    watch: { type: "string" },
    "all-projects": { type: "boolean", default: false },
    url: { type: "string", default: process.env.STRATUS_API_URL ?? "http://127.0.0.1:8774" },
  },
});
const token = process.env.OS_TOKEN;
if (!token) {
  console.error("watch: set OS_TOKEN to a token the compute API accepts (X-Auth-Token)");
  process.exit(2);
}
const query = new URLSearchParams();
if (values.watch) query.set("server_id", values.watch);
if (values["all-projects"]) query.set("all_projects", "1");

/** Exits with the server's status if it is already ACTIVE or ERROR. */
async function settledAlready(id) {
  const res = await fetch(`${values.url.replace(/\/+$/, "")}/v2.1/servers/${encodeURIComponent(id)}`, {
    headers: { "x-auth-token": token },
  });
  if (res.status !== 200) {
    console.error(`watch: server ${id}: ${res.status} ${await res.text()}`);
    process.exit(1);
  }
  const { server } = await res.json();
  if (server.status === "ACTIVE" || server.status === "ERROR") {
    console.log(`${server.updated} ${id} ${server.status.padEnd(6)} (already)`);
    process.exit(server.status === "ACTIVE" ? 0 : 1);
  }
}

let lastId = "";
for (let attempt = 0; ; attempt++) {
  let res;
  try {
    res = await fetch(`${values.url.replace(/\/+$/, "")}/v2.1/stratus/server-events?${query}`, {
      headers: {
        "x-auth-token": token,
        accept: "text/event-stream",
        ...(lastId ? { "last-event-id": lastId } : {}),
      },
    });
  } catch (err) {
    console.error(`watch: ${err.cause?.code ?? err.message}; again in 1 s`);
    await new Promise((r) => setTimeout(r, 1000));
    continue;
  }
  if (res.status !== 200) {
    console.error(`watch: ${res.status} ${await res.text()}`);
    process.exit(1);
  }
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let i = buffer.indexOf("\n\n"); i >= 0; i = buffer.indexOf("\n\n")) {
        const event = Object.fromEntries(
          buffer
            .slice(0, i)
            .split("\n")
            .filter((line) => !line.startsWith(":"))
            .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim()]),
        );
        buffer = buffer.slice(i + 2);
        if (event.id) lastId = event.id;
        // The watch is in place: a server that settled before it started is read instead.
        if (event.event === "ready" && values.watch && attempt === 0) await settledAlready(values.watch);
        if (event.event !== "server") continue;
        const s = JSON.parse(event.data);
        const what = `${s.vm_state}${s.task_state ? `/${s.task_state}` : ""}`;
        console.log(
          `${s.at} ${s.server_id} ${s.status.padEnd(6)} ${what}${s.host ? ` on ${s.host}` : ""}${s.message ? `: ${s.message}` : ""}`,
        );
        if (values.watch && (s.status === "ACTIVE" || s.status === "ERROR"))
          process.exit(s.status === "ACTIVE" ? 0 : 1);
      }
    }
  } catch (err) {
    console.error(
      `watch: connection lost (${err.cause?.code ?? err.message}); resuming after event ${lastId}`,
    );
  }
}
