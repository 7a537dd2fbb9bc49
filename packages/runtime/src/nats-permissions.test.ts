// The rules of who may do what on NATS (design.md §6, issue 21), checked on the permissions the
// table yields: widening a role beyond its rule fails here before any server runs.
import { describe, expect, it } from "vitest";
import { natsPermissions, streamsOwnedBy } from "./nats-permissions.js";
import { instancesOf, NATS_ROLES, type NatsRole, Streams, Subjects, shardOf } from "./nats-subjects.js";

/** NATS subject matching: `*` is one token, `>` one or more trailing tokens. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

function mayPublish(role: NatsRole, subject: string): boolean {
  const { publish } = natsPermissions(role);
  return "allow" in publish && publish.allow.some((pattern) => matches(pattern, subject));
}

function maySubscribe(role: NatsRole, subject: string): boolean {
  return natsPermissions(role).subscribe.allow.some((pattern) => matches(pattern, subject));
}

function publishers(subject: string): NatsRole[] {
  return NATS_ROLES.filter((role) => mayPublish(role, subject));
}

describe("NATS permissions", () => {
  it("matches subjects as nats-server does", () => {
    expect(matches("stratus.compute.build.>", "stratus.compute.build.rack1-1")).toBe(true);
    expect(matches("stratus.compute.build.>", "stratus.compute.build")).toBe(false);
    expect(matches("stratus.*.state", "stratus.server.state")).toBe(true);
    expect(matches("stratus.*.state", "stratus.server.state.x")).toBe(false);
    expect(matches(">", "anything.at.all")).toBe(true);
  });

  it("lets only the conductor send build and delete commands", () => {
    expect(publishers(Subjects.computeBuild("rack1-1"))).toEqual(["conductor"]);
    expect(publishers(Subjects.computeDelete("host.example.org"))).toEqual(["conductor"]);
  });

  it("lets only compute agents report results, deletes, plugged vifs and heartbeats", () => {
    for (const subject of [
      Subjects.computeResult,
      Subjects.computeDeleted,
      Subjects.vifPlugged,
      Subjects.heartbeat,
    ]) {
      expect(publishers(subject), subject).toEqual(["compute-agent"]);
    }
  });

  it("lets only the owner of a resource publish its events", () => {
    const owners: [string, NatsRole][] = [
      ["stratus.server.state.p1", "conductor"],
      ["stratus.server.changed", "conductor"],
      ["stratus.port.bound", "network-adapter"],
      ["stratus.port.created", "network-adapter"],
      ["stratus.ip.allocated", "network-adapter"],
      ["stratus.network.created", "network-adapter"],
      ["stratus.allocation.claimed", "scheduler"],
      ["stratus.placement.changed", "scheduler"],
      ["stratus.identity.revoked", "identity"],
    ];
    for (const [subject, owner] of owners) expect(publishers(subject), subject).toEqual([owner]);
    // A subject nobody declared is nobody's to publish.
    expect(publishers("stratus.server.forged")).toEqual([]);
    expect(publishers("stratus.port.forged")).toEqual([]);
  });

  it("lets every role read only what it consumes, and tools read every event", () => {
    expect(maySubscribe("api", Subjects.serversChanged)).toBe(true);
    expect(maySubscribe("api", Subjects.computeResult)).toBe(false);
    expect(maySubscribe("conductor", Subjects.heartbeat)).toBe(true);
    expect(maySubscribe("conductor", Subjects.portBound)).toBe(false);
    expect(maySubscribe("compute-agent", Subjects.computeBuild("rack1-1"))).toBe(false);
    expect(maySubscribe("network-adapter", Subjects.serverState("p1"))).toBe(false);
    expect(maySubscribe("tools", Subjects.computeBuild("rack1-1"))).toBe(true);
    expect(publishers("stratus.anything").includes("tools")).toBe(false);
    expect(natsPermissions("tools").publish).toEqual({ deny: [">"] });
  });

  it("gives each role its own reply inbox only", () => {
    expect(maySubscribe("conductor", "_INBOX.conductor.abc.1")).toBe(true);
    expect(maySubscribe("compute-agent", "_INBOX.conductor.abc.1")).toBe(false);
    expect(NATS_ROLES.filter((role) => maySubscribe(role, "_INBOX.x"))).toEqual([]);
  });

  it("lets only the conductor make or change the streams, and nobody delete or purge them", () => {
    const shards = Streams.computeCommands.shards.map((s) => s.name);
    expect(shards).toHaveLength(16);
    expect(streamsOwnedBy("conductor").flatMap((s) => instancesOf(s).map((i) => i.name))).toEqual([
      ...shards,
      Streams.computeResults.name,
      Streams.serverEvents.name,
    ]);
    // The unsharded command stream is an earlier version's: nothing of this one makes it.
    expect(streamsOwnedBy("conductor").flatMap(instancesOf)).not.toContainEqual(
      expect.objectContaining({ name: Streams.computeCommandsUnsharded.name }),
    );
    for (const { name } of Object.values(Streams).flatMap(instancesOf)) {
      expect(publishers(`$JS.API.STREAM.CREATE.${name}`)).toEqual(["conductor"]);
      expect(publishers(`$JS.API.STREAM.UPDATE.${name}`)).toEqual(["conductor"]);
      expect(publishers(`$JS.API.STREAM.DELETE.${name}`)).toEqual([]);
      expect(publishers(`$JS.API.STREAM.PURGE.${name}`)).toEqual([]);
    }
    expect(publishers("$JS.API.STREAM.CREATE.ANOTHER")).toEqual([]);
  });

  it("lets the api read the server events from a sequence of its choosing, and no other service", () => {
    const events = Streams.serverEvents.name;
    expect(publishers(`$JS.API.CONSUMER.CREATE.${events}.watch_1`)).toEqual(["api"]);
    expect(publishers(`$JS.API.CONSUMER.MSG.NEXT.${events}.watch_1`)).toEqual(["api"]);
    expect(publishers(`$JS.API.CONSUMER.DELETE.${events}.watch_1`)).toEqual(["api"]);
    expect(publishers(`$JS.API.STREAM.INFO.${events}`)).toEqual(["api", "conductor"]);
    // Only the agents delete consumers of the command streams (their own hosts', when they stop).
    for (const { name } of [...Streams.computeCommands.shards, Streams.computeCommandsUnsharded]) {
      expect(publishers(`$JS.API.CONSUMER.DELETE.${name}.x`)).toEqual(["compute-agent"]);
    }
    expect(publishers(`$JS.API.CONSUMER.DELETE.${Streams.computeResults.name}.x`)).toEqual([]);
    expect(publishers(`$JS.API.CONSUMER.CREATE.${Streams.computeResults.name}.x`)).toEqual(["conductor"]);
    expect(publishers(`$JS.API.STREAM.CREATE.${events}`)).toEqual(["conductor"]);
  });

  it("lets a role consume only the streams it reads", () => {
    const results = Streams.computeResults.name;
    for (const commands of [
      Streams.computeCommands.streamOf("rack1-1"),
      Streams.computeCommandsUnsharded.name,
    ]) {
      expect(publishers(`$JS.API.CONSUMER.MSG.NEXT.${commands}.host-rack1-1`)).toEqual(["compute-agent"]);
      expect(publishers(`$JS.ACK.${commands}.host-rack1-1.1.2.3.4.5`)).toEqual(["compute-agent"]);
      // An agent deletes its hosts' consumers when it stops (and lists them to remove an earlier
      // layout's); the conductor looks them up (which stream a host's agent reads).
      expect(publishers(`$JS.API.CONSUMER.DELETE.${commands}.host-rack1-1`)).toEqual(["compute-agent"]);
      expect(publishers(`$JS.API.CONSUMER.LIST.${commands}`)).toEqual(["compute-agent"]);
      expect(publishers(`$JS.API.CONSUMER.INFO.${commands}.host-rack1-1`)).toEqual([
        "conductor",
        "compute-agent",
      ]);
    }
    expect(publishers(`$JS.API.CONSUMER.MSG.NEXT.${results}.conductor-results`)).toEqual(["conductor"]);
    expect(publishers(`$JS.ACK.${results}.conductor-results.1.2.3.4.5`)).toEqual(["conductor"]);
    // Nobody deletes the conductor's.
    expect(publishers(`$JS.API.CONSUMER.DELETE.${results}.conductor-results`)).toEqual([]);
    expect(publishers(`$JS.API.CONSUMER.LIST.${results}`)).toEqual([]);
  });

  it("addresses each host's commands under one subject token of its shard, so no host's filter covers another's", () => {
    const { hostFilter, hostConsumer, streamOf } = Streams.computeCommands;
    // FNV-1a of "rack1-1" is 0xe492e677: shard 7 of 16.
    expect(Subjects.computeBuild("rack1-1")).toBe("stratus.compute.commands.07.rack1-1.build");
    expect(streamOf("rack1-1")).toBe("STRATUS_COMPUTE_COMMANDS_07");
    expect(Subjects.computeDelete("cn1.example.org")).toMatch(
      /^stratus\.compute\.commands\.[0-9a-f]{2}\.cn1%2Eexample%2Eorg\.delete$/,
    );
    // `a.b` is one token (its dot encoded), distinct from `a_b`.
    expect(hostFilter("a.b")).toBe(`stratus.compute.commands.${shardOf("a.b", 16)}.a%2Eb.>`);
    expect(hostFilter("a.b")).not.toBe(hostFilter("a_b"));
    expect(hostConsumer("a.b")).toBe("host-a%2Eb");
    expect(hostConsumer("a_b")).toBe("host-a_b");
    expect(publishers(Subjects.computeBuild("cn1.example.org"))).toEqual(["conductor"]);
    // A host's filter is within its shard's stream, and within no other.
    for (const host of ["rack1-1", "a.b", "cn1.example.org", "é"]) {
      const tree = `${hostFilter(host).split(".").slice(0, 4).join(".")}.>`;
      const holding = Streams.computeCommands.shards.filter((s) => s.subjects.includes(tree));
      expect(holding.map((s) => s.name)).toEqual([streamOf(host)]);
    }
    // The unsharded layout of earlier agents.
    expect(Subjects.computeBuildUnsharded("rack1-1")).toBe("stratus.compute.host.rack1-1.build");
    expect(Streams.computeCommandsUnsharded.hostFilter("a.b")).toBe("stratus.compute.host.a%2Eb.>");
    expect(Streams.computeCommandsUnsharded.subjects).toEqual(["stratus.compute.host.>"]);
    expect(publishers(Subjects.computeDeleteUnsharded("rack1-1"))).toEqual(["conductor"]);
  });

  it("spreads hosts over every shard", () => {
    const used = new Set(Array.from({ length: 1000 }, (_, i) => shardOf(`rack1-a${i}-1`, 16)));
    expect([...used].sort()).toEqual(Array.from({ length: 16 }, (_, k) => k.toString(16).padStart(2, "0")));
  });
});
