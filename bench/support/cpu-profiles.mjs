// Reading V8 CPU profiles (.cpuprofile), shared by profile-summary.mjs and profile-diff.mjs.

/** A profile frame's file, short: a package's path from its name, a service's from services/. */
export const shortFile = (url) =>
  url
    .replace(/^file:\/\//, "")
    .replace(/.*\/node_modules\//, "npm:")
    .replace(/.*\/(services|packages)\//, "$1/");

/** Self time (µs) per node id of one profile, from its samples and their time deltas. */
export function selfTimes(profile) {
  const self = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++)
    self.set(samples[i], (self.get(samples[i]) ?? 0) + (timeDeltas[i] ?? 0));
  return self;
}

/** Whether a node's samples are the process waiting, not working. */
export const isIdle = (node) => node.callFrame.functionName === "(idle)";
