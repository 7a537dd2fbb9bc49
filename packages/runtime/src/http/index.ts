// What a REST edge is made of: body reading, request parts, routing, the server and answers.
export { BodyTooLarge, HttpFault, parseJsonBody, readBody } from "./body.js";
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
