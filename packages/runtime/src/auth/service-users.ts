// Making the service users of the mesh in Stratus's identity (or an existing Keystone), as an
// administrator: user stratus-<service> in project `service` with the `service` role (as Nova's
// `nova` user), its password generated and kept in `<dir>/<service>.password` (0600, the directory
// 0700) for the service to read (SERVICE_PASSWORD_FILE). `npm start` and the test harness do this.
// Rotating a password: delete its file and run it again (the user gets the new password, which
// ends its tokens; the service reads the file at its next login).
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writePrivateFile } from "../nats-server-config.js";
import { SERVICE_ROLES } from "../nats-subjects.js";
import type { KeystoneAdmin } from "./keystone-admin.js";
import { SERVICE_PROJECT, SERVICE_ROLE, type ServicePrincipalName, serviceUserName } from "./principal.js";

/** The services that log in to the identity as a service user (the identity issues the tokens). */
export const LOGIN_SERVICES = SERVICE_ROLES.filter((r) => r !== "identity");

/** Where a service principal's password lives in a credentials directory. */
export function passwordFileOf(dir: string, service: ServicePrincipalName): string {
  return join(dir, `${service}.password`);
}

/** Reads a password file: its first line (a trailing newline is not part of the password). */
export function readPasswordFile(path: string): string {
  const password = readFileSync(path, "utf8").split(/\r?\n/)[0] ?? "";
  if (!password) throw new Error(`${path} holds no password`);
  return password;
}

/** The password kept in `file`, made (random, 32 bytes; the file 0600) when there is none. */
export function keptPassword(file: string): string {
  if (!existsSync(file)) writePrivateFile(file, `${randomBytes(32).toString("base64url")}\n`);
  return readPasswordFile(file);
}

/**
 * Makes (or sets again) the service users of `services` with the passwords kept in `dir` (made
 * there on first use); returns each one's password file.
 */
export async function ensureServiceUsers(
  admin: KeystoneAdmin,
  services: readonly ServicePrincipalName[],
  dir: string,
): Promise<Record<string, string>> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const files: Record<string, string> = {};
  for (const service of services) {
    await ensureServiceUser(admin, service, keptPassword(passwordFileOf(dir, service)));
    files[service] = passwordFileOf(dir, service);
  }
  return files;
}

/**
 * Makes (or sets again) one service user with `password`: stratus-<service> in project `service`
 * with the `service` role. For passwords an operator keeps elsewhere (a Kubernetes Secret, read-only).
 */
export async function ensureServiceUser(
  admin: KeystoneAdmin,
  service: ServicePrincipalName,
  password: string,
): Promise<void> {
  await admin.ensureUser({
    name: serviceUserName(service),
    password,
    project: SERVICE_PROJECT,
    roles: [SERVICE_ROLE],
  });
}
