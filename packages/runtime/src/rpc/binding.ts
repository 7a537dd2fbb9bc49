// A service a process answers: its descriptor and its (possibly partial) implementation.
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";

export interface ServiceBinding {
  service: DescService;
  impl: Partial<ServiceImpl<DescService>>;
}

/** Pairs a service with its (possibly partial) implementation; missing RPCs answer Unimplemented. */
export function bindService<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
): ServiceBinding {
  return { service, impl: impl as Partial<ServiceImpl<DescService>> };
}
