// Which stream a host's commands take: its shard's, unless only an agent of the unsharded layout
// reads the host; answers are kept for a while, and concurrent builds of one host look once.
import { Streams } from "@stratus/runtime";
import { describe, expect, it } from "vitest";
import { CommandRoutes } from "./command-routes.js";

/** Consumers as NATS would hold them: `stream/name`; the unsharded stream exists unless told. */
function lookup(present: Set<string>, unshardedStream = { exists: true }) {
  const asked: string[] = [];
  return {
    asked,
    async hasStream(stream: string) {
      asked.push(stream);
      return stream === Streams.computeCommandsUnsharded.name && unshardedStream.exists;
    },
    async hasConsumer(stream: string, name: string) {
      asked.push(`${stream}/${name}`);
      return present.has(`${stream}/${name}`);
    },
  };
}

const shard = (host: string) =>
  `${Streams.computeCommands.streamOf(host)}/${Streams.computeCommands.hostConsumer(host)}`;
const unsharded = (host: string) =>
  `${Streams.computeCommandsUnsharded.name}/${Streams.computeCommandsUnsharded.hostConsumer(host)}`;

describe("command routes", () => {
  it("send a host's commands to its shard unless only the unsharded stream has its consumer", async () => {
    const routes = new CommandRoutes(
      lookup(new Set([shard("new"), shard("both"), unsharded("both"), unsharded("old")])),
    );
    expect(await routes.sharded("new")).toBe(true);
    expect(await routes.sharded("both")).toBe(true);
    expect(await routes.sharded("old")).toBe(false);
    // No agent yet: its shard, where the command waits for the consumer the agent will make.
    expect(await routes.sharded("none")).toBe(true);
  });

  it("keep an answer for a while, and look once for concurrent commands", async () => {
    let now = 0;
    const present = new Set([unsharded("h")]);
    const l = lookup(present);
    const routes = new CommandRoutes(l, { shardedTtlMs: 60_000, otherTtlMs: 1000, now: () => now });
    expect(await Promise.all([routes.sharded("h"), routes.sharded("h"), routes.sharded("h")])).toEqual([
      false,
      false,
      false,
    ]);
    expect(l.asked).toEqual([Streams.computeCommandsUnsharded.name, shard("h"), unsharded("h")]);
    // The host's agent is upgraded: its shard's consumer appears; seen once the answer is old.
    present.add(shard("h"));
    now = 999;
    expect(await routes.sharded("h")).toBe(false);
    now = 1000;
    expect(await routes.sharded("h")).toBe(true);
    // The stream asked again (its answer is as old), then the host's shard.
    expect(l.asked.slice(3)).toEqual([Streams.computeCommandsUnsharded.name, shard("h")]);
    now = 1500;
    expect(await routes.sharded("h")).toBe(true);
    expect(l.asked).toHaveLength(5);
  });

  it("send every host to its shard, asking nothing per host, where the unsharded stream does not exist", async () => {
    let now = 0;
    const stream = { exists: false };
    const l = lookup(new Set([unsharded("old")]), stream);
    const routes = new CommandRoutes(l, { otherTtlMs: 1000, now: () => now });
    const hosts = Array.from({ length: 100 }, (_, i) => `h${i}`);
    expect(await Promise.all(hosts.map((h) => routes.sharded(h)))).toEqual(hosts.map(() => true));
    expect(l.asked).toEqual([Streams.computeCommandsUnsharded.name]);
    // It appears (an earlier version's conductor made it): seen once the answer is old.
    stream.exists = true;
    now = 1000;
    expect(await routes.sharded("old")).toBe(false);
  });

  it("keep no answer when the lookup fails", async () => {
    let fail = true;
    const routes = new CommandRoutes({
      hasStream: async () => true,
      hasConsumer: async () => {
        if (fail) throw new Error("NATS away");
        return true;
      },
    });
    await expect(routes.sharded("h")).rejects.toThrow("NATS away");
    fail = false;
    expect(await routes.sharded("h")).toBe(true);
  });
});
