// The background reconciler (docs/audit.md): the audit every interval, as the conductor itself,
// each finding logged as one structured line (audit: "finding") and published as
// stratus.audit.finding. It reports and repairs nothing: repairs are an operator's call
// (`npm run audit -- --fix`, AuditMesh with fix). A pass that fails (a peer down) is logged and
// the next one runs at the next interval; passes never overlap.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AuditFindingSchema } from "@stratus/contracts/events/v1";
import { type EventBus, type Logger, runWithContext, Subjects, systemContext } from "@stratus/runtime";
import type { Auditor } from "./auditor.js";
import type { Finding } from "./checks.js";

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(
    private readonly o: {
      auditor: Auditor;
      bus: Pick<EventBus, "publish">;
      logger: Logger;
      intervalMs: number;
    },
  ) {}

  start(): void {
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pass().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.o.intervalMs);
    this.timer.unref();
  }

  /** One audit pass; resolves when its findings are reported, never throws. */
  async pass(): Promise<Finding[]> {
    const ctx = systemContext();
    return runWithContext(ctx, async () => {
      try {
        const { findings, checkedAt } = await this.o.auditor.run();
        for (const f of findings) {
          this.o.logger.warn(
            { audit: "finding", kind: f.kind, subject: f.subject, detail: f.detail, fix: f.fix },
            `audit: ${f.kind} ${f.subject}`,
          );
          this.o.bus.publish(Subjects.auditFinding, AuditFindingSchema, {
            kind: f.kind,
            subject: f.subject,
            detail: f.detail,
            fix: f.fix,
            repairable: f.repair !== undefined,
            at: timestampFromDate(checkedAt),
          });
        }
        this.o.logger.info({ audit: "pass", findings: findings.length }, "audit pass done");
        return findings;
      } catch (err) {
        this.o.logger.warn({ err, audit: "pass" }, "audit pass failed; next one at the next interval");
        return [];
      }
    });
  }
}
