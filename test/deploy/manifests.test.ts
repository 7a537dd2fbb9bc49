// The deployment files hold together: the Kubernetes manifests render (kubectl's kustomize) and
// every object validates against the Kubernetes schemas (kubernetes-models, generated from the
// API's OpenAPI documents); each workload is probed over grpc.health.v1, asks for resources, runs
// non-root and read-only, and is covered by a PodDisruptionBudget; every variable a service is
// given is one of its settings (its --help); every Secret, ConfigMap and Service a workload names
// exists; and the image's entrypoint knows every service.
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot, SERVICE_NAMES } from "@stratus/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";

const run = promisify(execFile);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
}

/** Custom resources of the operators the example overlay uses; their CRDs check them when applied. */
const OPERATOR_KINDS = new Set(["postgresql.cnpg.io/v1/Cluster", "postgresql.cnpg.io/v1/Database"]);
/** Secrets made by an operator, not by the manifests: CloudNativePG's application user. */
const OPERATOR_SECRETS = new Set(["stratus-postgres-app"]);

const kubectl = async (): Promise<boolean> => {
  try {
    await run("kubectl", ["version", "--client"]);
    return true;
  } catch {
    return false;
  }
};
const haveKubectl = await kubectl();
if (!haveKubectl && process.env.CI)
  throw new Error("kubectl (with kustomize) is needed to render the manifests in CI");

let work: string;
let objects: K8sObject[] = [];
const settings = new Map<string, Set<string>>();

beforeAll(async () => {
  if (!haveKubectl) return;
  work = mkdtempSync(join(tmpdir(), "stratus-deploy-"));
  cpSync(join(repoRoot, "deploy", "kubernetes"), join(work, "kubernetes"), { recursive: true });
  const secrets = join(work, "kubernetes", "overlays", "example", "secrets");
  await run(
    process.execPath,
    ["--import", "tsx", join(repoRoot, "scripts", "deploy-credentials.ts"), secrets],
    {
      cwd: repoRoot,
    },
  );
  const { stdout } = await run("kubectl", ["kustomize", join(work, "kubernetes", "overlays", "example")], {
    maxBuffer: 16 << 20,
  });
  objects = parseAllDocuments(stdout).map((d) => d.toJS() as K8sObject);
  await Promise.all(
    SERVICE_NAMES.map(async (name) => {
      const help = await run(
        process.execPath,
        ["--import", "tsx", join(repoRoot, "services", name, "src", "main.ts"), "--help"],
        {
          cwd: repoRoot,
        },
      );
      settings.set(name, new Set([...help.stdout.matchAll(/^ {2}([A-Z][A-Z0-9_]+) /gm)].map((m) => m[1]!)));
    }),
  );
}, 180_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const workloads = () => objects.filter((o) => o.kind === "Deployment" || o.kind === "DaemonSet");
const named = (kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name);

describe.skipIf(!haveKubectl)("the Kubernetes manifests (example overlay)", () => {
  it("render a workload for every service, in the overlay's namespace, with the overlay's image", () => {
    const components = workloads().map((w) => w.metadata.labels?.["app.kubernetes.io/component"]);
    expect(components.sort()).toEqual([...SERVICE_NAMES].sort());
    for (const o of objects.filter((o) => o.kind !== "Namespace"))
      expect(o.metadata.namespace).toBe("stratus");
    for (const w of [...workloads(), ...objects.filter((o) => o.kind === "Job")]) {
      for (const c of w.spec.template.spec.containers)
        expect(c.image).toBe("registry.example.com/stratus:0.1.0");
    }
  });

  it("validate against the Kubernetes schemas", async () => {
    let checked = 0;
    for (const o of objects) {
      if (OPERATOR_KINDS.has(`${o.apiVersion}/${o.kind}`)) continue;
      const module = o.apiVersion === "v1" ? "kubernetes-models/v1" : `kubernetes-models/${o.apiVersion}`;
      const models = (await import(module)) as Record<string, new (o: unknown) => { validate(): void }>;
      const Model = models[o.kind];
      expect(Model, `${o.apiVersion} ${o.kind}`).toBeDefined();
      // kustomize wraps a Secret's base64 at 76 columns; the API server's decoder skips the line
      // breaks, the schema's `byte` format does not.
      const wire =
        o.kind === "Secret" && o.data
          ? {
              ...o,
              data: Object.fromEntries(Object.entries(o.data).map(([k, v]) => [k, v.replace(/\s/g, "")])),
            }
          : o;
      expect(() => new Model!(wire).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
      checked++;
    }
    expect(checked).toBeGreaterThan(20);
  });

  it("probe each service over grpc.health.v1 on its RPC port and run it non-root, read-only, with resources", () => {
    for (const w of workloads()) {
      const spec = w.spec.template.spec;
      expect(spec.securityContext.runAsNonRoot, w.metadata.name).toBe(true);
      expect(spec.automountServiceAccountToken).toBe(false);
      for (const c of spec.containers) {
        const rpc = c.ports.find((p: { name: string }) => p.name === "rpc").containerPort;
        const port = c.env.find((e: { name: string }) => e.name === "PORT")?.value;
        expect(Number(port), `${c.name} PORT`).toBe(rpc);
        for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
          expect(c[probe]?.grpc?.port, `${c.name} ${probe}`).toBe(rpc);
        }
        expect(c.resources.requests.cpu, c.name).toBeDefined();
        expect(c.resources.requests.memory, c.name).toBeDefined();
        expect(c.resources.limits.memory, c.name).toBeDefined();
        expect(c.securityContext).toMatchObject({
          runAsNonRoot: true,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ["ALL"] },
        });
      }
    }
  });

  it("cover every replicated Deployment with a PodDisruptionBudget", () => {
    const pdbs = objects.filter((o) => o.kind === "PodDisruptionBudget");
    for (const d of objects.filter((o) => o.kind === "Deployment")) {
      expect(d.spec.replicas, d.metadata.name).toBeGreaterThanOrEqual(2);
      const labels = d.spec.template.metadata.labels as Record<string, string>;
      const covering = pdbs.filter((p) =>
        Object.entries(p.spec.selector.matchLabels as Record<string, string>).every(
          ([k, v]) => labels[k] === v,
        ),
      );
      expect(covering.length, d.metadata.name).toBe(1);
    }
  });

  it("give each service only variables that are its settings", () => {
    const config = named(
      "ConfigMap",
      objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("stratus-config"))!.metadata
        .name,
    )!;
    for (const key of Object.keys(config.data ?? {})) {
      expect(
        [...settings.values()].some((s) => s.has(key)),
        `stratus-config ${key}`,
      ).toBe(true);
    }
    for (const w of workloads()) {
      const service = w.metadata.labels!["app.kubernetes.io/component"]!;
      for (const c of w.spec.template.spec.containers) {
        const env = c.env as { name: string; value?: string }[];
        // A variable only spelled into another's value ($(NAME)) is the pod's, not the service's.
        const referenced = new Set(
          env.flatMap((e) => [...(e.value ?? "").matchAll(/\$\(([A-Z0-9_]+)\)/g)].map((m) => m[1])),
        );
        for (const e of env) {
          if (referenced.has(e.name)) continue;
          expect(settings.get(service)!.has(e.name), `${service}: ${e.name}`).toBe(true);
        }
      }
    }
  });

  it("name only Secrets, ConfigMaps and Services that exist", () => {
    const refs: { kind: string; name: string; from: string }[] = [];
    const walk = (node: unknown, from: string) => {
      if (Array.isArray(node)) for (const n of node) walk(n, from);
      else if (node && typeof node === "object") {
        const o = node as Record<string, unknown>;
        if (typeof o.secretName === "string") refs.push({ kind: "Secret", name: o.secretName, from });
        if (o.secretKeyRef)
          refs.push({ kind: "Secret", name: (o.secretKeyRef as { name: string }).name, from });
        if (o.configMapKeyRef)
          refs.push({ kind: "ConfigMap", name: (o.configMapKeyRef as { name: string }).name, from });
        if (o.configMapRef)
          refs.push({ kind: "ConfigMap", name: (o.configMapRef as { name: string }).name, from });
        for (const v of Object.values(o)) walk(v, from);
      }
    };
    for (const o of objects) walk(o.spec, `${o.kind}/${o.metadata.name}`);
    expect(refs.length).toBeGreaterThan(10);
    for (const r of refs) {
      if (r.kind === "Secret" && OPERATOR_SECRETS.has(r.name)) continue;
      expect(named(r.kind, r.name), `${r.from} → ${r.kind} ${r.name}`).toBeDefined();
    }
    // Every in-cluster URL a service is given is a Service of the render with that port.
    const urls = objects
      .filter((o) => o.kind === "ConfigMap" || o.kind === "Job")
      .flatMap((o) => [...JSON.stringify(o).matchAll(/https?:\/\/(stratus-[a-z-]+):(\d+)/g)]);
    expect(urls.length).toBeGreaterThan(5);
    for (const [, host, port] of urls) {
      const svc = named("Service", host!);
      expect(svc, host).toBeDefined();
      expect(
        svc!.spec.ports.map((p: { port: number }) => p.port),
        host,
      ).toContain(Number(port));
    }
  });
});

describe("the container image", () => {
  it("runs every service by name, and installs every workspace's manifest before the sources", () => {
    const entrypoint = readFileSync(join(repoRoot, "deploy", "container", "stratus"), "utf8");
    const names = entrypoint.match(/^\s+([a-z| -]+)\)\n\s+exec node --import tsx "\/app\/services/m)?.[1];
    expect(
      names
        ?.split("|")
        .map((s) => s.trim())
        .sort(),
    ).toEqual([...SERVICE_NAMES].sort());
    const dockerfile = readFileSync(join(repoRoot, "deploy", "Dockerfile"), "utf8");
    const workspaces = ["packages", "services"].flatMap((d) =>
      readdirSync(join(repoRoot, d)).map((w) => `${d}/${w}/package.json`),
    );
    for (const w of workspaces) expect(dockerfile, w).toContain(`COPY ${w} `);
    expect(dockerfile).toMatch(/^USER 10001:10001$/m);
  });
});
