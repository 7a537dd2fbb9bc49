// Structured JSON logs (pino); every line carries the request id of the context it runs in.
import { type Logger, pino } from "pino";
import { currentContext } from "./context.js";

export type { Logger };

export function createLogger(service: string, level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin() {
      const ctx = currentContext();
      return ctx ? { request_id: ctx.requestId } : {};
    },
  });
}
