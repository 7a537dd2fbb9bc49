import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/src/**/*.test.ts", "services/*/src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Integration tests start real processes; two cores do not gain from more workers.
    maxWorkers: 2,
    reporters: ["default", ["json", { outputFile: "test-results.json" }]],
  },
});
