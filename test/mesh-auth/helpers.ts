// Helpers for the mesh's authentication tests: clients on every protocol with no credential of
// their own (each call names its headers), tokens forged three ways, and the refusal a call got.
import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import type { Mesh } from "@stratus/runtime/testing";
import { base64url, decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from "jose";

/** The protocols every RPC port answers, and the fast path, as a plain client would use them. */
export const PROTOCOLS: [string, (baseUrl: string) => Transport][] = [
  ["Connect JSON", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" })],
  // Unary Connect binary is what the server's fast path (fast-server.ts) answers; the rest, connect-node.
  [
    "Connect binary (the fast path)",
    (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
  ],
  ["gRPC", (baseUrl) => createGrpcTransport({ baseUrl })],
  ["gRPC-Web", (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" })],
];

/** A client of a service that sends only the headers each call gives. */
export function plainClient<S extends DescService>(service: S, transport: Transport): Client<S> {
  return createClient(service, transport);
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The Connect code a call was refused with; "ok" when it was answered. */
export async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "ok";
  } catch (err) {
    return Code[ConnectError.from(err).code]!;
  }
}

/** The token's claims signed with another key under the identity's kid. */
export async function signedWithAnotherKey(token: string): Promise<string> {
  const { kid } = decodeProtectedHeader(token);
  const { privateKey } = await generateKeyPair("ES256");
  return new SignJWT(decodeJwt(token)).setProtectedHeader({ alg: "ES256", kid: kid! }).sign(privateKey);
}

/** The token with its payload changed after signing: the roles of an admin. */
export function tampered(token: string): string {
  const [header, , signature] = token.split(".");
  const claims = { ...decodeJwt(token), openstack_roles: ["admin", "member", "reader"] };
  return `${header}.${base64url.encode(JSON.stringify(claims))}.${signature}`;
}

/**
 * A token of the mesh's identity that has expired: made from an application credential that
 * expires in three seconds (a token never outlives its credential), once its expiry has passed. The
 * token is returned with the time it expired; `works` is called before, to show it was valid.
 */
export async function expiredToken(
  mesh: Mesh,
  owner: { token: string; userId: string },
  works: (token: string) => Promise<void>,
): Promise<string> {
  const url = `${mesh.identity.restUrl}/v3`;
  const made = await fetch(`${url}/users/${owner.userId}/application_credentials`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-auth-token": owner.token },
    body: JSON.stringify({
      application_credential: {
        name: `short-${Date.now()}`,
        expires_at: new Date(Date.now() + 3000).toISOString(),
      },
    }),
  });
  const { application_credential: credential } = (await made.json()) as {
    application_credential: { id: string; secret: string };
  };
  const issued = await fetch(`${url}/auth/tokens?nocatalog`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      auth: {
        identity: { methods: ["application_credential"], application_credential: credential },
      },
    }),
  });
  const token = issued.headers.get("x-subject-token")!;
  const { exp } = decodeJwt(token);
  await works(token);
  // The token's own expiry, not a guess: after it, the token is expired by definition.
  await new Promise((r) => setTimeout(r, Math.max(0, exp! * 1000 - Date.now()) + 50));
  return token;
}
