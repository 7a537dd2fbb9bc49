// The HTTP/2 connection to a peer: connect-node's Http2SessionManager, with every connection it
// opens guarded against the deferred error of a GOAWAY.
//
// connect-node 2.1 destroys a connection that receives GOAWAY with no open stream, with an error
// Node.js raises on the session only once the socket has closed. If a call reconnects before
// that, the manager has already removed its error listener from the old session, and the error
// is raised with no listener: an uncaught exception that ends the process
// (connectrpc/connect-es#1768, fix proposed in #1769). A peer that stops sends exactly that
// GOAWAY, so a replica stopping could take down the processes calling it. The manager has
// handled the GOAWAY by then (it reconnects); the late error carries nothing more, so each
// connection gets one listener that drops it.
import type { ClientHttp2Session, SecureClientSessionOptions } from "node:http2";
import { Http2SessionManager } from "@connectrpc/connect-node";

type PingOptions = ConstructorParameters<typeof Http2SessionManager>[1];

const guarded = new WeakSet<ClientHttp2Session>();
const dropLateError = () => {};

export function peerSessionManager(
  url: string | URL,
  pingOptions?: PingOptions,
  tls?: SecureClientSessionOptions,
): Http2SessionManager {
  const manager = new Http2SessionManager(url, pingOptions, tls);
  // setState is where every new connection's state (connecting, ready) enters the manager.
  const internals = manager as unknown as { setState(state: { conn?: unknown }): void };
  const setState = internals.setState.bind(manager);
  internals.setState = (state) => {
    const conn = state.conn as ClientHttp2Session | undefined;
    if (conn && typeof conn.on === "function" && !guarded.has(conn)) {
      guarded.add(conn);
      conn.on("error", dropLateError);
    }
    setState(state);
  };
  return manager;
}
