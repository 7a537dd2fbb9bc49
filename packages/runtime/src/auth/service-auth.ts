// How a service authenticates in the mesh, in either mode: its own credential for its outgoing
// calls (service-credential.ts) and the TokenValidator its RPC port checks callers with.
//   built-in (default): the service logs in to Stratus's identity service (IDENTITY_URL) as its
//     service user stratus-<service> in project `service`, with the password in
//     SERVICE_PASSWORD_FILE; tokens are verified locally with the identity's keys
//     (IDENTITY_RPC_URL), revocations following over NATS.
//   Keystone (KEYSTONE_URL and its service user set, keystone-config.ts): the service logs in to
//     that Keystone as KEYSTONE_SERVICE_USER, which must be stratus-<service> with the `service`
//     role, and validates tokens by asking it (keystone.ts), with that same login.
import { z } from "zod";
import { ConfigError, fileSetting, peerUrl } from "../config.js";
import type { Logger } from "../log.js";
import type { EventBus } from "../nats.js";
import type { ServiceRole } from "../nats-subjects.js";
import { useCallerCredential } from "./caller-credential.js";
import type { TokenValidator } from "./identity.js";
import { identityServiceSource } from "./identity-source.js";
import { KeystoneTokenValidator, type KeystoneValidatorOptions } from "./keystone.js";
import { KeystoneClient, type ServiceCredentials } from "./keystone-client.js";
import {
  type KeystoneConfig,
  keystoneConfig,
  keystoneV3Url,
  keystoneValidatorOptions,
} from "./keystone-config.js";
import { KeystoneServiceToken } from "./keystone-service-token.js";
import { LocalTokenValidator } from "./local-validator.js";
import { LoginCredential } from "./login-credential.js";
import { SERVICE_PROJECT, type ServicePrincipalName, serviceUserName } from "./principal.js";
import { readPasswordFile } from "./service-users.js";

/** The settings of a service's authentication in the mesh (both modes). */
export const serviceAuthConfig = {
  IDENTITY_URL: z
    .url({ protocol: /^https?$/ })
    .default("http://127.0.0.1:5000")
    .describe(
      "Stratus's identity service (Keystone v3 REST): where this service logs in as its service user",
    ),
  IDENTITY_RPC_URL: peerUrl
    .default("http://127.0.0.1:9105")
    .describe(
      "The identity service's RPC URL(s), replicas comma-separated: the public keys and revocations tokens are checked with",
    ),
  SERVICE_PASSWORD_FILE: fileSetting(readPasswordFile).describe(
    "File with the password of this service's user stratus-<service> (npm start: .stratus/identity/credentials/<service>.password); read at every login",
  ),
  ...keystoneConfig,
};

export type ServiceAuthConfig = z.infer<z.ZodObject<typeof serviceAuthConfig>>;

export type ServiceAuthMode =
  | { mode: "keystone"; options: KeystoneValidatorOptions }
  | { mode: "identity"; identityUrl: string; identityRpcUrl: string; passwordFile: string };

/** Which mode the settings choose; throws ConfigError on settings that do not make one. */
export function serviceAuthMode(config: ServiceAuthConfig, service: ServiceRole): ServiceAuthMode {
  const keystone = keystoneValidatorOptions(config as KeystoneConfig);
  if (keystone) {
    if (keystone.serviceUser.name !== serviceUserName(service)) {
      throw new ConfigError(
        `invalid configuration:\n  KEYSTONE_SERVICE_USER=${JSON.stringify(keystone.serviceUser.name)}: must be ${serviceUserName(service)} (the ${service}'s service user, with the service role)`,
      );
    }
    return { mode: "keystone", options: keystone };
  }
  if (!config.SERVICE_PASSWORD_FILE) {
    throw new ConfigError(
      `invalid configuration:\n  SERVICE_PASSWORD_FILE="": required (the password of ${serviceUserName(service)} in Stratus's identity), unless KEYSTONE_URL and its service user are set`,
    );
  }
  return {
    mode: "identity",
    identityUrl: config.IDENTITY_URL,
    identityRpcUrl: config.IDENTITY_RPC_URL,
    passwordFile: config.SERVICE_PASSWORD_FILE,
  };
}

/** A password login to Stratus's identity at identityUrl, as a user of the Default domain. */
function identityLogin(
  identityUrl: string,
  login: () => { user: string; password: string; project: string },
  logger: Logger,
): KeystoneServiceToken {
  const credentials = (): ServiceCredentials => {
    const { user, password, project } = login();
    return {
      user: { name: user, password, domainName: "Default" },
      project: { name: project, domainName: "Default" },
    };
  };
  return new KeystoneServiceToken(
    new KeystoneClient(keystoneV3Url(identityUrl), 5000, logger),
    credentials,
    Date.now,
  );
}

/**
 * The built-in mode's login of a service principal: user stratus-<service>, project `service`,
 * the password read from its file at every login (a rotated password needs no restart).
 */
export function serviceUserLogin(
  identityUrl: string,
  service: ServicePrincipalName,
  passwordFile: string,
  logger: Logger,
): KeystoneServiceToken {
  return identityLogin(
    identityUrl,
    () => ({
      user: serviceUserName(service),
      password: readPasswordFile(passwordFile),
      project: SERVICE_PROJECT,
    }),
    logger,
  );
}

/** A service's authentication in the mesh, started (the process's caller credential installed). */
export interface ServiceAuth {
  credential: LoginCredential;
  validator: TokenValidator;
  close(): Promise<void>;
}

/**
 * Logs the service in, installs its credential for every outgoing call, and starts its validator;
 * resolves once both work (trying again until the identity service or Keystone answers).
 */
export async function startServiceAuth(o: {
  service: ServiceRole;
  mode: ServiceAuthMode;
  bus: EventBus;
  logger: Logger;
}): Promise<ServiceAuth> {
  const { mode, logger } = o;
  const token =
    mode.mode === "keystone"
      ? new KeystoneServiceToken(
          new KeystoneClient(mode.options.url, mode.options.timeoutMs, logger),
          () => ({ user: mode.options.serviceUser, project: mode.options.serviceProject }),
          Date.now,
        )
      : serviceUserLogin(mode.identityUrl, o.service, mode.passwordFile, logger);
  const credential = new LoginCredential(o.service, token, logger);
  await credential.start();
  // Every call from this process carries it from now on, the validator's own calls included.
  useCallerCredential(credential);
  let validator: TokenValidator;
  if (mode.mode === "keystone") {
    validator = new KeystoneTokenValidator(mode.options, logger, { serviceToken: token });
  } else {
    const local = new LocalTokenValidator(identityServiceSource(mode.identityRpcUrl, o.bus), { logger });
    await local.start();
    validator = local;
  }
  logger.info({ mode: mode.mode, user: serviceUserName(o.service) }, "logged in as the service user");
  return {
    credential,
    validator,
    async close() {
      credential.close();
      await validator.close();
    },
  };
}

/**
 * For an operator's script (the demo seed): logs in to Stratus's identity as a user of its own,
 * scoped to `project`, and installs that credential for every call the process makes.
 */
export async function loginAsUser(o: {
  identityUrl: string;
  user: string;
  password: string;
  project: string;
  logger: Logger;
}): Promise<LoginCredential> {
  const token = identityLogin(o.identityUrl, () => o, o.logger);
  const credential = new LoginCredential(undefined, token, o.logger);
  await credential.start();
  useCallerCredential(credential);
  return credential;
}
