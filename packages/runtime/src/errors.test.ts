import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { fromConnectError, novaFault, StratusError, toConnectError } from "./errors.js";

describe("error vocabulary", () => {
  it("maps kinds to Connect codes and back without losing the kind", () => {
    const ce = toConnectError(
      new StratusError("ip_exhausted", "No more IP addresses available on network n1."),
    );
    expect(ce.code).toBe(Code.ResourceExhausted);
    const back = fromConnectError(ce);
    expect(back.kind).toBe("ip_exhausted");
    expect(back.message).toBe("No more IP addresses available on network n1.");
    expect(back.httpStatus).toBe(409);
  });

  it("derives a kind from a bare Connect code and hides unknown errors as internal", () => {
    expect(fromConnectError(new ConnectError("gone", Code.NotFound)).kind).toBe("not_found");
    const hidden = toConnectError(new Error("secret detail"));
    expect(hidden.code).toBe(Code.Internal);
    expect(hidden.rawMessage).not.toContain("secret");
  });

  it("renders Nova fault bodies", () => {
    expect(novaFault(404, "Instance x could not be found.")).toEqual({
      itemNotFound: { code: 404, message: "Instance x could not be found." },
    });
    expect(novaFault(406, "Version 9.9 is not supported by the API.")).toHaveProperty("computeFault");
  });
});
