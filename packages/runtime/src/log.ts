// Structured JSON logs (pino); every line carries the request id of the context it runs in.
import { type Logger, pino } from "pino";
import { currentContext } from "./context.js";

export type { Logger };

/**
 * Logs go to stdout asynchronously: pino's default synchronous write blocks the event loop (it
 * sleeps and retries) whenever the reader of our stdout pipe falls behind, which stalled every
 * request in flight under load. Lines are written as soon as the pipe takes them; whatever is still
 * buffered when the process exits (a clean shutdown, an uncaught exception) is flushed then.
 */
export function createLogger(service: string, level = "info"): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 0 });
  process.once("exit", () => {
    try {
      destination.flushSync();
    } catch {
      // stdout already closed
    }
  });
  return pino(
    {
      level,
      base: { service, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin() {
        const ctx = currentContext();
        return ctx ? { request_id: ctx.requestId } : {};
      },
    },
    destination,
  );
}
