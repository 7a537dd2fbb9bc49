// One port for HTTP/1.1 and HTTP/2. A front listener accepts every connection and hands it to one
// of two servers that never listen themselves: in cleartext by its first bytes (the HTTP/2
// connection preface, RFC 9113 §3.4, means h2c; anything else is HTTP/1.1), over TLS by the
// protocol ALPN agreed on (h2, else HTTP/1.1). After that hand-over a connection is the chosen
// server's alone, exactly as if that server had accepted it: the front costs something per
// connection (one read of its first bytes, or nothing beyond the TLS handshake), never per call.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import tls from "node:tls";
import type { Logger } from "../log.js";
import type { ListenerTls } from "../tls.js";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** How long closing waits for calls in flight before it drops the connections left. */
const CLOSE_GRACE_MS = 2000;

export interface HttpVersionsListener {
  readonly port: number;
  /**
   * Stops accepting, closes idle connections at once (GOAWAY on HTTP/2 sessions, a closed socket
   * for idle HTTP/1.1 keep-alive connections), lets calls in flight finish and drops whatever is
   * still open after a grace period.
   */
  close(): Promise<void>;
}

export interface HttpVersionsOptions {
  host: string;
  port: number;
  /** Requests that arrived over HTTP/1.1. */
  http1: (req: IncomingMessage, res: ServerResponse) => void;
  /** Requests that arrived over HTTP/2 (h2c, or h2 over TLS). */
  http2: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
  /** Serve TLS only, with this certificate; absent: cleartext. */
  tls?: ListenerTls;
  logger: Logger;
}

export async function listenHttpVersions(options: HttpVersionsOptions): Promise<HttpVersionsListener> {
  let closing = false;
  // HTTP/1.1 responses being written: when closing, each is the last of its connection.
  const inFlight = new Set<ServerResponse>();
  const h1 = http.createServer((req, res) => {
    if (closing) res.shouldKeepAlive = false;
    else {
      inFlight.add(res);
      res.once("close", () => inFlight.delete(res));
    }
    options.http1(req, res);
  });
  h1.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
  });
  // Node keeps its list of a server's HTTP/1.1 connections (what closeIdleConnections reads, and
  // what its header and request timeouts are checked on) from when the server starts listening;
  // this one is handed its connections by the front instead, so it is told it listens.
  h1.emit("listening");

  const h2 = http2.createServer(options.http2);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  const toHttp1 = (socket: net.Socket) => {
    // What http.Server does to the connections it accepts itself.
    socket.setNoDelay(true);
    h1.emit("connection", socket);
  };
  const toHttp2 = (socket: net.Socket) => h2.emit("connection", socket);

  // Every connection the front accepted, until it closes; and those whose protocol is not known yet.
  const accepted = new Set<net.Socket>();
  const undecided = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    accepted.add(socket);
    socket.once("close", () => {
      accepted.delete(socket);
      undecided.delete(socket);
    });
  };

  let front: net.Server;
  if (options.tls) {
    front = tls.createServer({ ...options.tls, ALPNProtocols: ["h2", "http/1.1"] }, (socket) => {
      if (socket.alpnProtocol === "h2") toHttp2(socket);
      else toHttp1(socket);
    });
    front.on("connection", track);
  } else {
    front = net.createServer({ pauseOnConnect: true }, (socket) => {
      track(socket);
      undecided.add(socket);
      sniff(socket, h1.headersTimeout, (isHttp2) => {
        undecided.delete(socket);
        if (isHttp2) toHttp2(socket);
        else toHttp1(socket);
      });
    });
  }
  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(options.port, options.host, () => {
      front.off("error", reject);
      resolve();
    });
  });

  return {
    port: (front.address() as AddressInfo).port,
    async close() {
      closing = true;
      const drained = new Promise<void>((resolve) => front.close(() => resolve()));
      for (const socket of undecided) socket.destroy();
      for (const session of sessions) session.close();
      h1.closeIdleConnections();
      for (const res of inFlight) {
        if (!res.headersSent) res.shouldKeepAlive = false;
        else {
          const socket = res.socket;
          res.once("finish", () => socket?.end());
        }
      }
      // Pooled clients may keep sessions open, streams may never end: do not wait forever.
      const timer = setTimeout(() => {
        options.logger.debug({ connections: accepted.size }, "rpc connections dropped at close");
        for (const socket of accepted) socket.destroy();
      }, CLOSE_GRACE_MS);
      await drained;
      clearTimeout(timer);
      h1.close();
    },
  };
}

/**
 * Reads a new connection's first bytes, in paused mode, until they tell the HTTP/2 preface from
 * anything else, puts them back, and says which it was. A connection that says nothing for
 * `timeoutMs` is closed, as the HTTP/1.1 server closes one whose headers do not come.
 */
function sniff(socket: net.Socket, timeoutMs: number, decided: (isHttp2: boolean) => void): void {
  let head: Buffer | undefined;
  socket.setTimeout(timeoutMs, () => socket.destroy());
  socket.on("error", ignore);
  const onReadable = () => {
    const chunk = socket.read() as Buffer | null;
    if (chunk === null) return;
    head = head ? Buffer.concat([head, chunk]) : chunk;
    const n = Math.min(head.length, PREFACE.length);
    const isPrefix = head.compare(PREFACE, 0, n, 0, n) === 0;
    if (isPrefix && n < PREFACE.length) return;
    socket.off("readable", onReadable);
    socket.off("error", ignore);
    socket.setTimeout(0);
    socket.unshift(head);
    decided(isPrefix);
  };
  socket.on("readable", onReadable);
}

function ignore(): void {}
