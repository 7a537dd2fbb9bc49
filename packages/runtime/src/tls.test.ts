// The TLS settings are read and checked at start (tls.ts): a file that cannot be used is a
// ConfigError naming the variable and the file.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "./config.js";
import { makeTestCertificates, type TestCertificates } from "./testing/tls.js";
import { listenerTls, peerCa, type TlsSettings } from "./tls.js";

let certs: TestCertificates;
let garbage: string;
beforeAll(() => {
  certs = makeTestCertificates();
  garbage = join(certs.dir, "garbage.pem");
  writeFileSync(garbage, "not pem at all\n");
});
afterAll(() => certs.remove());

function refusal(read: () => unknown): string {
  try {
    read();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("accepted");
}

describe("TLS settings", () => {
  it("reads a certificate and its key; none is cleartext", () => {
    const tls = listenerTls({ TLS_CERT_FILE: certs.certFile, TLS_KEY_FILE: certs.keyFile });
    expect(tls?.cert.toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(tls?.key.toString()).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(listenerTls({})).toBeUndefined();
    expect(peerCa({ TLS_CA_FILE: certs.caFile })).toEqual(certs.ca);
    expect(peerCa({})).toBeUndefined();
  });

  it("wants the certificate and the key together", () => {
    expect(refusal(() => listenerTls({ TLS_CERT_FILE: certs.certFile }))).toMatch(
      /TLS_KEY_FILE="": required with TLS_CERT_FILE/,
    );
    expect(refusal(() => listenerTls({ TLS_KEY_FILE: certs.keyFile }))).toMatch(
      /TLS_CERT_FILE="": required with TLS_KEY_FILE/,
    );
  });

  it("names a file that cannot be read or is not what it should be", () => {
    const missing = join(certs.dir, "missing.pem");
    const cases: [TlsSettings, RegExp][] = [
      [
        { TLS_CERT_FILE: missing, TLS_KEY_FILE: certs.keyFile },
        /TLS_CERT_FILE=".*missing\.pem": cannot be read/,
      ],
      [
        { TLS_CERT_FILE: certs.certFile, TLS_KEY_FILE: missing },
        /TLS_KEY_FILE=".*missing\.pem": cannot be read/,
      ],
      [
        { TLS_CERT_FILE: garbage, TLS_KEY_FILE: certs.keyFile },
        /TLS_CERT_FILE=".*garbage\.pem": not a PEM certificate/,
      ],
      [
        { TLS_CERT_FILE: certs.certFile, TLS_KEY_FILE: garbage },
        /TLS_KEY_FILE=".*garbage\.pem": not a PEM private key/,
      ],
      [{ TLS_CA_FILE: missing }, /TLS_CA_FILE=".*missing\.pem": cannot be read/],
      [{ TLS_CA_FILE: garbage }, /TLS_CA_FILE=".*garbage\.pem": not a PEM certificate/],
    ];
    for (const [settings, message] of cases) {
      expect(refusal(() => (settings.TLS_CA_FILE ? peerCa(settings) : listenerTls(settings)))).toMatch(
        message,
      );
    }
  });

  it("refuses a key that is not the certificate's", () => {
    expect(
      refusal(() => listenerTls({ TLS_CERT_FILE: certs.certFile, TLS_KEY_FILE: certs.otherKeyFile })),
    ).toMatch(/TLS_KEY_FILE=".*other\.key": not the key of the certificate in TLS_CERT_FILE/);
  });
});
