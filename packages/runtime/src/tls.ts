// The TLS material a service's configuration names (config.ts, tlsConfig), read and checked when
// the service starts: its listeners' certificate and key, and the CA its RPC clients verify peers
// with. A file that cannot be read or parsed, or a key that is not the certificate's, is a
// ConfigError naming the variable, so the service stops at start rather than at its first call.
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { z } from "zod";
import { invalidSetting, type tlsConfig } from "./config.js";

export type TlsSettings = z.infer<z.ZodObject<typeof tlsConfig>>;

/** What a listener serving TLS presents (tls.createServer's options of the same names). */
export interface ListenerTls {
  cert: Buffer;
  key: Buffer;
}

/** The listeners' certificate and key; undefined when neither is set (cleartext). */
export function listenerTls(settings: TlsSettings): ListenerTls | undefined {
  const { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile } = settings;
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined) throw invalidSetting("TLS_CERT_FILE", certFile, "required with TLS_KEY_FILE");
  if (keyFile === undefined) throw invalidSetting("TLS_KEY_FILE", keyFile, "required with TLS_CERT_FILE");
  const cert = readSetting("TLS_CERT_FILE", certFile);
  const key = readSetting("TLS_KEY_FILE", keyFile);
  const certificate = parsed("TLS_CERT_FILE", certFile, "a PEM certificate", () => new X509Certificate(cert));
  const privateKey: KeyObject = parsed("TLS_KEY_FILE", keyFile, "a PEM private key", () =>
    createPrivateKey(key),
  );
  if (!certificate.checkPrivateKey(privateKey)) {
    throw invalidSetting(
      "TLS_KEY_FILE",
      keyFile,
      `not the key of the certificate in TLS_CERT_FILE (${certFile})`,
    );
  }
  return { cert, key };
}

/** The CA certificates RPC clients trust for https:// peers; undefined: Node's bundled ones. */
export function peerCa(settings: TlsSettings): Buffer | undefined {
  const file = settings.TLS_CA_FILE;
  if (file === undefined) return undefined;
  const ca = readSetting("TLS_CA_FILE", file);
  parsed("TLS_CA_FILE", file, "a PEM certificate", () => new X509Certificate(ca));
  return ca;
}

function readSetting(name: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw invalidSetting(name, file, `cannot be read (${reason(err)})`);
  }
}

function parsed<T>(name: string, file: string, what: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw invalidSetting(name, file, `not ${what} (${reason(err)})`);
  }
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
