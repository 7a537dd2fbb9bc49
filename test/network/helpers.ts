// Helpers for the network-adapter's integration tests.
import type { NetworkService } from "@stratus/contracts/network/v1";
import { StratusError, type serviceClient } from "@stratus/runtime";

export type NetworkClient = ReturnType<typeof serviceClient<typeof NetworkService>>;

/** The StratusError a call was refused with (fails the test when the call succeeds). */
export async function refusal(p: Promise<unknown>): Promise<StratusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StratusError) return err;
    throw err;
  }
  throw new Error("expected the call to be refused");
}

/** Polls until check() returns without throwing (for state kept in step in the background). */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** A tenant network with one IPv4 subnet. */
export async function tenantNetwork(
  net: NetworkClient,
  cidr: string,
  project = "p1",
): Promise<{ networkId: string; subnetId: string }> {
  const { network } = await net.createNetwork({ name: `net-${cidr}`, projectId: project });
  const { subnet } = await net.createSubnet({ networkId: network!.id, cidr, projectId: project });
  return { networkId: network!.id, subnetId: subnet!.id };
}
