// grpc.health.v1.Health over Connect: every service answers Check/List/Watch so generic gRPC
// tooling (and our start script) can wait for it.
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@stratus/contracts/grpc/health/v1";

export { ServingStatus };

/** Response header of Health.Check: the pid of the process that answered. */
export const PID_HEADER = "stratus-pid";

export class HealthState {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<() => void>();

  /** "" is the whole server. */
  set(service: string, status: ServingStatus): void {
    this.statuses.set(service, status);
    for (const wake of this.watchers) wake();
  }

  setAll(status: ServingStatus): void {
    for (const name of this.statuses.keys()) this.statuses.set(name, status);
    for (const wake of this.watchers) wake();
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  private response(service: string): HealthCheckResponse {
    return create(HealthCheckResponseSchema, {
      status: this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN,
    });
  }

  impl(): ServiceImpl<typeof Health> {
    return {
      check: (req, ctx) => {
        // Which process answered: a test that started a service on a port can tell its own child
        // from a stranger that holds the port.
        ctx.responseHeader.set(PID_HEADER, String(process.pid));
        if (!this.statuses.has(req.service)) {
          throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
        }
        return this.response(req.service);
      },
      list: () => ({
        statuses: Object.fromEntries([...this.statuses.keys()].map((name) => [name, this.response(name)])),
      }),
      watch: (req, ctx) => this.watch(req.service, ctx.signal),
    };
  }

  private async *watch(service: string, signal: AbortSignal): AsyncGenerator<HealthCheckResponse> {
    let last: ServingStatus | undefined;
    while (!signal.aborted) {
      const now = this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
      if (now !== last) {
        last = now;
        yield this.response(service);
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.watchers.delete(wake);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        this.watchers.add(wake);
        signal.addEventListener("abort", wake);
      });
    }
  }
}
