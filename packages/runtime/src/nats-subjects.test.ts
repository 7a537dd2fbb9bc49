// The mesh's subjects come from the contracts: every subject events.proto declares on a message
// has its name in Subjects (and no name there lacks a declaration, or the module would not load),
// each fills to a subject of its own declaration, and a publish on a subject the contracts do not
// declare for the message is refused before it leaves the process.
import {
  BuildCommandSchema,
  PortChangedSchema,
  ServerStateChangedSchema,
  ServersChangedSchema,
} from "@stratus/contracts/events/v1";
import type { NatsConnection } from "nats";
import { describe, expect, it } from "vitest";
import { createLogger } from "./log.js";
import { EventBus } from "./nats.js";
import { assertDeclared, DECLARED_SUBJECTS, declarationOf, Subjects, subjectToken } from "./nats-subjects.js";

describe("the subjects the contracts declare", () => {
  it("each have their name in Subjects, and Subjects names nothing else", () => {
    expect(DECLARED_SUBJECTS.size).toBeGreaterThan(20);
    expect(Object.keys(Subjects).sort()).toEqual([...DECLARED_SUBJECTS.keys()].sort());
  });

  it("fill to subjects of their own declaration and message", () => {
    for (const [name, value] of Object.entries(Subjects)) {
      const subject = typeof value === "function" ? value("rack1-1") : value;
      const d = declarationOf(subject);
      expect(d?.name, subject).toBe(name);
      expect(() => assertDeclared(subject, d!.message)).not.toThrow();
    }
    expect(Subjects.computeBuild("rack1-1")).toBe("stratus.compute.commands.07.rack1-1.build");
    expect(Subjects.computeBuild("*")).toBe("stratus.compute.commands.*.*.build");
    expect(DECLARED_SUBJECTS.get("computeBuild")).toMatchObject({ fields: ["host"], shards: 16 });
    expect(declarationOf("stratus.compute.commands.7.rack1-1.build")).toBeUndefined();
    expect(Subjects.serverState("p1")).toBe("stratus.server.state.p1");
    expect(DECLARED_SUBJECTS.get("serverState")?.fields).toEqual(["project_id"]);
    expect(DECLARED_SUBJECTS.get("serverState")?.message.typeName).toBe(
      "stratus.events.v1.ServerStateChanged",
    );
  });

  it("keep a value one token whatever it holds, and give wildcards to subscribers", () => {
    expect(subjectToken("a.b")).toBe("a%2Eb");
    expect(subjectToken("*")).toBe("%2A");
    expect(subjectToken("")).toBe("%");
    expect(subjectToken("é x")).toBe("%C3%A9%20x");
    expect(Subjects.serverState("p.1>")).toBe("stratus.server.state.p%2E1%3E");
    expect(Subjects.serverState(">")).toBe("stratus.server.state.>");
    expect(Subjects.serverState("*")).toBe("stratus.server.state.*");
    expect(declarationOf(Subjects.serverState("p.1 x"))?.name).toBe("serverState");
  });

  it("refuse a message on a subject not declared for it", () => {
    expect(() => assertDeclared("stratus.server.changed", ServerStateChangedSchema)).toThrow(/not declared/);
    expect(() => assertDeclared("stratus.server.state", ServerStateChangedSchema)).toThrow(/not declared/);
    expect(() => assertDeclared("stratus.port.created", PortChangedSchema)).not.toThrow();
    expect(declarationOf("stratus.port.forged")).toBeUndefined();
    // EventBus checks before the connection is touched: no message leaves.
    const sent: string[] = [];
    const nc = { publish: (subject: string) => sent.push(subject) } as unknown as NatsConnection;
    const bus = new EventBus(nc, createLogger("test", "silent"));
    expect(() => bus.publish("stratus.server.forged", ServersChangedSchema, { projectIds: ["p"] })).toThrow(
      /not declared/,
    );
    expect(() => bus.publish(Subjects.computeResult, BuildCommandSchema, {})).toThrow(/not declared/);
    bus.publish(Subjects.serversChanged, ServersChangedSchema, { projectIds: ["p"] });
    expect(sent).toEqual(["stratus.server.changed"]);
  });
});
