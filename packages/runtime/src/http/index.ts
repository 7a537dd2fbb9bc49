// What a REST edge is made of: body reading, request parts, routing, the server and answers.
export { BodyTooLarge, HttpFault, parseJsonBody, REFUSED_BODY_READ_BYTES, readBody } from "./body.js";
export { type FaultPolicy, RETRY_AFTER_S, type RestFault, restFault, ServiceUnavailable } from "./faults.js";
export { checkJsonText, MAX_JSON_DEPTH } from "./json-text.js";
export { decodeSegments, header, hostBaseUrl, requestUrl } from "./request.js";
export { type MatchResult, PathRouter } from "./router.js";
export {
  closeHttp,
  createHttpServer,
  listenHttp,
  type RestResponse,
  type RestServer,
  sendResponse,
} from "./server.js";
