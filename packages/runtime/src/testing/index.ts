// Test harness: real nats-server on a free port, real service processes, temporary PostgreSQL
// databases. Used by integration tests in test/ and by services' own tests.

export {
  agentHostPattern,
  type Cluster,
  type ClusterOptions,
  type ReplicatedService,
  startCluster,
} from "./cluster.js";
export { credentialInterceptor } from "./credential-interceptor.js";
export {
  type IdentityUnderTest,
  meshIdentity,
  startIdentity,
  type UserToken,
  type UserTokenSpec,
} from "./identity.js";
export {
  type IssuedTestToken,
  type KeystoneOptions,
  keystoneMissingPackages,
  type PasswordAuth,
  startKeystone,
  type TestKeystone,
  validationOutcome,
} from "./keystone.js";
export { type Mesh, startMesh, URL_VARIABLES } from "./mesh.js";
export {
  freePort,
  natsServerBinary,
  startNats,
  startNatsCluster,
  type TestNats,
  type TestNatsCluster,
  waitForPort,
} from "./nats-server.js";
export { createTempDatabase, postgresAvailable, TEST_POSTGRES_URL, type TempDatabase } from "./postgres.js";
export {
  keepOutputs,
  repoRoot,
  SERVICE_NAMES,
  type ServiceName,
  type ServiceProcess,
  spawnService,
  waitForServing,
} from "./processes.js";
export { rawCall, startTestRpcServer } from "./rpc.js";
export { startService } from "./start-service.js";
export { makeTestCertificates, type TestCertificates } from "./tls.js";
