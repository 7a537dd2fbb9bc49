// Which stream a host's commands take: its shard's, unless only an agent of the unsharded layout
// reads the host; answers are kept for a while, and concurrent builds of one host look once.
import { Streams } from "@stratus/runtime";
import { describe, expect, it } from "vitest";
import { CommandRoutes } from "./command-routes.js";

/** Consumers as NATS would hold them: `stream/name`. */
function lookup(present: Set<string>) {
  const asked: string[] = [];
  return {
    asked,
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
    expect(l.asked).toEqual([shard("h"), unsharded("h")]);
    // The host's agent is upgraded: its shard's consumer appears; seen once the answer is old.
    present.add(shard("h"));
    now = 999;
    expect(await routes.sharded("h")).toBe(false);
    now = 1000;
    expect(await routes.sharded("h")).toBe(true);
    expect(l.asked).toHaveLength(3);
    now = 50_000;
    expect(await routes.sharded("h")).toBe(true);
    expect(l.asked).toHaveLength(3);
  });

  it("keep no answer when the lookup fails", async () => {
    let fail = true;
    const routes = new CommandRoutes({
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
