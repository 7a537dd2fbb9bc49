// Graceful shutdown: closers run in reverse order of registration on SIGTERM/SIGINT.
import type { Logger } from "./log.js";

export class Lifecycle {
  private readonly closers: { name: string; close: () => Promise<void> | void }[] = [];
  private stopping?: Promise<void>;

  constructor(private readonly logger: Logger) {}

  onShutdown(name: string, close: () => Promise<void> | void): void {
    this.closers.push({ name, close });
  }

  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      for (const { name, close } of [...this.closers].reverse()) {
        try {
          await close();
        } catch (err) {
          this.logger.warn({ err, part: name }, "error while shutting down");
        }
      }
    })();
    return this.stopping;
  }

  /**
   * Exits 0 after a clean shutdown on SIGTERM/SIGINT; a second signal exits at once. With
   * `exitWithParent` (STRATUS_EXIT_WITH_PARENT, set by the test harness), also once the process
   * with that id is gone.
   */
  installSignalHandlers(exitWithParent?: number): void {
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.stopping) process.exit(1);
      this.logger.info({ signal }, "shutting down");
      const force = setTimeout(() => process.exit(1), 10_000);
      force.unref();
      void this.shutdown().then(() => {
        this.logger.flush();
        process.exit(0);
      });
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    // Started by the test harness: shut down when the test or benchmark process that started us
    // dies without stopping us (a timeout, a kill), so no orphan keeps ports and connections.
    const parent = exitWithParent ?? 0;
    if (parent > 0) {
      setInterval(() => {
        try {
          process.kill(parent, 0);
        } catch {
          if (!this.stopping) onSignal("SIGTERM");
        }
      }, 1000).unref();
    }
  }
}
