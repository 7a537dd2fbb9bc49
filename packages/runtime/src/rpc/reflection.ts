// gRPC server reflection (v1 and v1alpha) over Connect, so grpcurl / `buf curl` list and call our
// RPCs. Built from the descriptors protoc-gen-es embeds in the generated code.
import { create, type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { Health } from "@stratus/contracts/grpc/health/v1";
import * as v1 from "@stratus/contracts/grpc/reflection/v1";
import * as v1alpha from "@stratus/contracts/grpc/reflection/v1alpha";

interface Index {
  services: string[];
  byFilename: Map<string, DescFile>;
  bySymbol: Map<string, DescFile>;
}

function buildIndex(services: DescService[]): Index {
  const byFilename = new Map<string, DescFile>();
  const bySymbol = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (byFilename.has(file.proto.name)) return;
    byFilename.set(file.proto.name, file);
    for (const s of file.services) {
      bySymbol.set(s.typeName, file);
      for (const m of s.methods) bySymbol.set(`${s.typeName}.${m.name}`, file);
    }
    for (const m of file.messages) bySymbol.set(m.typeName, file);
    for (const e of file.enums) bySymbol.set(e.typeName, file);
    for (const dep of file.dependencies) visit(dep);
  };
  for (const s of services) visit(s.file);
  // Nested messages and enums are found by prefix below.
  return { services: services.map((s) => s.typeName), byFilename, bySymbol };
}

function withDependencies(file: DescFile): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  const walk = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const dep of f.dependencies) walk(dep);
  };
  walk(file);
  return out;
}

function findSymbol(index: Index, symbol: string): DescFile | undefined {
  const exact = index.bySymbol.get(symbol);
  if (exact) return exact;
  // Nested types: try ever shorter prefixes (a.b.Outer.Inner → a.b.Outer).
  let name = symbol;
  while (name.includes(".")) {
    name = name.slice(0, name.lastIndexOf("."));
    const file = index.bySymbol.get(name);
    if (file) return file;
  }
  return undefined;
}

type ReflectionApi = typeof v1 | typeof v1alpha;

function reflectionImpl<A extends ReflectionApi>(
  api: A,
  index: Index,
): ServiceImpl<A extends typeof v1 ? typeof v1.ServerReflection : typeof v1alpha.ServerReflection> {
  const answer = (req: v1.ServerReflectionRequest) => {
    const r = req.messageRequest;
    const notFound = (what: string) => ({
      case: "errorResponse" as const,
      value: { errorCode: 5, errorMessage: `${what} not found` },
    });
    switch (r.case) {
      case "listServices":
        return {
          case: "listServicesResponse" as const,
          value: { service: index.services.map((name) => ({ name })) },
        };
      case "fileByFilename": {
        const file = index.byFilename.get(r.value);
        return file
          ? {
              case: "fileDescriptorResponse" as const,
              value: { fileDescriptorProto: withDependencies(file) },
            }
          : notFound(`file ${r.value}`);
      }
      case "fileContainingSymbol": {
        const file = findSymbol(index, r.value);
        return file
          ? {
              case: "fileDescriptorResponse" as const,
              value: { fileDescriptorProto: withDependencies(file) },
            }
          : notFound(`symbol ${r.value}`);
      }
      case "allExtensionNumbersOfType":
        return {
          case: "allExtensionNumbersResponse" as const,
          value: { baseTypeName: r.value, extensionNumber: [] },
        };
      default:
        return { case: "errorResponse" as const, value: { errorCode: 12, errorMessage: "not implemented" } };
    }
  };
  const schema = api === v1 ? v1.ServerReflectionResponseSchema : v1alpha.ServerReflectionResponseSchema;
  return {
    async *serverReflectionInfo(requests: AsyncIterable<v1.ServerReflectionRequest>) {
      for await (const req of requests) {
        yield create(schema as typeof v1.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answer(req),
        });
      }
    },
  } as never;
}

/**
 * Reflection over `services` and what every port answers besides them: grpc.health.v1.Health and
 * reflection itself (so `buf curl` and grpcurl can call a health check by its name).
 */
export function reflectionServices(services: DescService[]) {
  const index = buildIndex([...services, Health, v1.ServerReflection, v1alpha.ServerReflection]);
  return [
    { service: v1.ServerReflection, impl: reflectionImpl(v1, index) },
    { service: v1alpha.ServerReflection, impl: reflectionImpl(v1alpha, index) },
  ] as const;
}
