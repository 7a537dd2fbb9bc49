// CPU profiles of a measured window only (diagnosis, not a figure): each service process preloads
// cpu-prof.cjs, and SIGUSR2 starts and then stops its V8 profiler, which writes
// <dir>/<service>/<pid>.cpuprofile. `node bench/support/profile-summary.mjs <dir>` reads them.
import { existsSync, mkdirSync, readdirSync } from "node:fs";

const preload = new URL("./cpu-prof.cjs", import.meta.url).pathname;

/** The environment that makes `service` profile on SIGUSR2 into <dir>/<service>; none without dir. */
export function profileEnv(dir: string | undefined, service: string): Record<string, string> {
  if (!dir) return {};
  mkdirSync(`${dir}/${service}`, { recursive: true });
  return { NODE_OPTIONS: `--require ${preload}`, CPU_PROF_DIR: `${dir}/${service}` };
}

/**
 * Starts the profilers of those of `processes` started with profileEnv (SIGUSR2 ends a Node
 * process without the preload, and puts a nats-server in lame duck mode) and returns what stops
 * them and waits until each has written its profile.
 */
export function startProfiles(
  dir: string | undefined,
  processes: { name: string; pid: number | undefined }[],
) {
  const nodes = dir ? processes.filter((p) => p.pid !== undefined && existsSync(`${dir}/${p.name}`)) : [];
  for (const p of nodes) process.kill(p.pid!, "SIGUSR2");
  return async (): Promise<void> => {
    for (const p of nodes) process.kill(p.pid!, "SIGUSR2");
    const written = (p: { name: string; pid?: number }) =>
      readdirSync(`${dir}/${p.name}`).includes(`${p.pid}.cpuprofile`);
    for (let i = 0; i < 300 && !nodes.every(written); i++) await new Promise((r) => setTimeout(r, 100));
  };
}
