// Test harness: real nats-server on a free port, real service processes, temporary PostgreSQL
// databases. Used by integration tests in test/ and by services' own tests.

export * from "./identity.js";
export * from "./mesh.js";
export * from "./nats-server.js";
export * from "./postgres.js";
export * from "./processes.js";
