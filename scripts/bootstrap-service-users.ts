// The deployment's bootstrap step (the image's `stratus bootstrap`, a Kubernetes Job): as the
// identity's admin (ADMIN_PASSWORD_FILE), makes or sets again each service user stratus-<service>
// with the password in SERVICE_CREDENTIALS_DIR/<service>.password — files an operator keeps (a
// Secret mounted read-only), so nothing is written. Waits for the identity to answer.
import { join } from "node:path";
import { ensureServiceUser, KeystoneAdmin, LOGIN_SERVICES, readPasswordFile } from "@stratus/runtime/auth";

const identityUrl = (process.env.IDENTITY_URL ?? "http://127.0.0.1:5000").replace(/\/+$/, "");
const adminFile = process.env.ADMIN_PASSWORD_FILE;
const dir = process.env.SERVICE_CREDENTIALS_DIR;
if (!adminFile || !dir) {
  console.error("ADMIN_PASSWORD_FILE and SERVICE_CREDENTIALS_DIR are required");
  process.exit(2);
}
const admin = new KeystoneAdmin(`${identityUrl}/v3`, {
  user: process.env.ADMIN_USERNAME ?? "admin",
  password: readPasswordFile(adminFile),
  project: process.env.ADMIN_PROJECT ?? "admin",
});

const deadline = Date.now() + Number(process.env.BOOTSTRAP_WAIT_S ?? 300) * 1000;
for (const service of LOGIN_SERVICES) {
  const password = readPasswordFile(join(dir, `${service}.password`));
  for (;;) {
    try {
      await ensureServiceUser(admin, service, password);
      console.log(JSON.stringify({ msg: "service user ready", user: `stratus-${service}` }));
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      console.log(JSON.stringify({ msg: "waiting for the identity", error: (err as Error).message }));
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}
