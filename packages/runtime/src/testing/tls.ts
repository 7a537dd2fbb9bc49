// Throwaway TLS material for tests, made with the openssl CLI (Node can parse certificates but not
// issue them): a CA, a server certificate it signed for 127.0.0.1 and localhost, and a key that
// belongs to no certificate. Everything lives in a temporary directory removed by `remove`.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ListenerTls } from "../tls.js";

export interface TestCertificates {
  readonly dir: string;
  /** The CA's certificate (what TLS_CA_FILE names). */
  readonly caFile: string;
  /** The server's certificate, for 127.0.0.1 and localhost, and its key. */
  readonly certFile: string;
  readonly keyFile: string;
  /** A key of the same kind that is not the certificate's. */
  readonly otherKeyFile: string;
  readonly ca: Buffer;
  /** The server's certificate and key, as a listener takes them. */
  readonly server: ListenerTls;
  remove(): void;
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "stratus-tls-"));
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  openssl(
    "req",
    "-x509",
    ...EC,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=Stratus test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
  openssl("req", ...EC, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  writeFileSync(
    at("server.ext"),
    [
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
    ].join("\n"),
  );
  openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    "server.ext",
    "-out",
    "server.pem",
  );
  openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "other.key");
  return {
    dir,
    caFile: at("ca.pem"),
    certFile: at("server.pem"),
    keyFile: at("server.key"),
    otherKeyFile: at("other.key"),
    ca: readFileSync(at("ca.pem")),
    server: { cert: readFileSync(at("server.pem")), key: readFileSync(at("server.key")) },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
