import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, expect, it } from "vitest";
import { peerSessionManager } from "./session-manager.js";

const servers: { server: http2.Http2Server; sessions: http2.ServerHttp2Session[] }[] = [];
afterEach(async () => {
  for (const { server, sessions } of servers.splice(0)) {
    for (const s of sessions) s.destroy();
    await new Promise((r) => server.close(r));
  }
});

it("a peer's GOAWAY on an idle connection, with a call reconnecting at once, raises nothing uncaught", async () => {
  const sessions: http2.ServerHttp2Session[] = [];
  const server = http2.createServer();
  server.on("session", (s) => sessions.push(s));
  server.on("stream", (stream) => stream.respond({ ":status": 200 }, { endStream: true }));
  servers.push({ server, sessions });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const uncaught: unknown[] = [];
  const record = (err: unknown) => uncaught.push(err);
  process.prependListener("uncaughtException", record);
  try {
    const manager = peerSessionManager(url);
    expect(await manager.connect()).toBe("idle");
    const conn = (manager as unknown as { s: { conn: http2.ClientHttp2Session } }).s.conn;
    // The manager's own goaway listener runs first (it destroys the connection with an error
    // Node.js raises once the socket has closed); a call arriving right then reconnects, which
    // takes the manager's error listener off the old connection (connectrpc/connect-es#1768).
    const reconnected = new Promise<string>((resolve) =>
      conn.once("goaway", () => void manager.connect().then(resolve)),
    );
    sessions[0]!.goaway(http2.constants.NGHTTP2_NO_ERROR);
    expect(await reconnected).toBe("idle");
    // Without the guard the late error is raised before the reconnection resolves.
    await new Promise((r) => setTimeout(r, 100));
    expect(conn.destroyed).toBe(true);
    expect(uncaught).toEqual([]);
    manager.abort();
  } finally {
    process.off("uncaughtException", record);
  }
});
