// OpenTelemetry tracing across REST, RPC and NATS, with W3C trace context (`traceparent`) on every
// hop: the REST server and the RPC pipeline continue the caller's trace in a server span, every
// outgoing RPC and NATS message carries the active span, a NATS handler continues the publisher's
// trace in a consumer span. Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: then spans go to that
// OTLP/HTTP collector in batches. Off, nothing of the SDK is loaded and every function here
// returns at its first line, so a call pays one boolean test.
import {
  type Attributes,
  type Context,
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";

let enabled = false;
let shutdown: (() => Promise<void>) | undefined;

export { SpanKind };

/** Whether spans are recorded and sent (startTracing found an endpoint). */
export function tracingEnabled(): boolean {
  return enabled;
}

/**
 * Starts sending this process's spans to the OTLP/HTTP collector at `endpoint` (traces are posted
 * to <endpoint>/v1/traces), as `service`; no endpoint: tracing stays off. Once per process.
 */
export async function startTracing(
  service: string,
  endpoint: string | undefined,
  scheduleDelayMs = 5000,
): Promise<void> {
  if (!endpoint || enabled) return;
  const [{ TracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] =
    await Promise.all([
      import("@opentelemetry/sdk-trace"),
      import("@opentelemetry/exporter-trace-otlp-http"),
      import("@opentelemetry/resources"),
    ]);
  const [{ AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }] = await Promise.all([
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/core"),
  ]);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": service }),
    spanProcessors: [
      // Batches of spans every OTEL_BSP_SCHEDULE_DELAY ms.
      new BatchSpanProcessor({
        scheduledDelayMillis: scheduleDelayMs,
        exporter: new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, "")}/v1/traces` }),
      }),
    ],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  shutdown = () => provider.shutdown();
  enabled = true;
}

/** Sends the spans still buffered (at shutdown). */
export async function stopTracing(): Promise<void> {
  await shutdown?.().catch(() => undefined);
}

interface HeaderSink {
  set(name: string, value: string): void;
}
interface HeaderSource {
  get(name: string): string | null | undefined;
}

/** Writes the active span's trace context (`traceparent`, `tracestate`) into outgoing headers. */
export function writeTraceContext(headers: HeaderSink): void {
  if (!enabled) return;
  propagation.inject(context.active(), headers, { set: (carrier, key, value) => carrier.set(key, value) });
}

function parentOf(headers: HeaderSource | undefined): Context {
  if (!headers) return context.active();
  return propagation.extract(context.active(), headers, {
    get: (carrier, key) => carrier.get(key) ?? undefined,
    keys: () => [],
  });
}

/**
 * Runs `fn` in a span named `name`, child of the trace context in `headers` (an incoming request
 * or message) or of the active span; the span records a failure and ends when `fn` settles.
 */
export function inSpan<T>(
  name: string,
  kind: SpanKind,
  headers: HeaderSource | undefined,
  attributes: Attributes,
  fn: () => Promise<T>,
): Promise<T> {
  if (!enabled) return fn();
  return trace
    .getTracer("stratus")
    .startActiveSpan(name, { kind, attributes }, parentOf(headers), async (span) => {
      try {
        return await fn();
      } catch (err) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR });
        throw err;
      } finally {
        span.end();
      }
    });
}
