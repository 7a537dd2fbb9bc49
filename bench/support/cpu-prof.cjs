// Preload for diagnosis (NODE_OPTIONS="--require .../cpu-prof.cjs", CPU_PROF_DIR=dir): the first
// SIGUSR2 starts the V8 CPU profiler, the second writes <dir>/<pid>.cpuprofile, so that only the
// measured phase is profiled (--cpu-prof is not allowed in NODE_OPTIONS and covers the whole life).
const inspector = require("node:inspector");
const fs = require("node:fs");
const path = require("node:path");

const dir = process.env.CPU_PROF_DIR || "/tmp";
const session = new inspector.Session();
session.connect();
let running = false;
process.on("SIGUSR2", () => {
  if (!running) {
    running = true;
    session.post("Profiler.enable", () => session.post("Profiler.start"));
    return;
  }
  running = false;
  session.post("Profiler.stop", (err, res) => {
    if (!err) fs.writeFileSync(path.join(dir, `${process.pid}.cpuprofile`), JSON.stringify(res.profile));
  });
});
