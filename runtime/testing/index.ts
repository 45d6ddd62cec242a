/**
 * modelfn/testing: what a function's own tests import. `openFunctionDir` and `openDeclared` load
 * a function in process (its Hono app answers `app.request`), the request helpers build the
 * protocol's JSON and binary requests and read the answers, and `conformanceSuite` is the Open
 * Inference Protocol suite every function passes, in process or behind a real URL.
 */
export {
  ROOT, FIXTURES, memoryLogger, testConfig, openFunctionDir, openDeclared,
  postJson, binaryRequest, bytesOf, readBinaryResponse, errorOf, decodedBody, compressionBomb,
} from './helpers.ts';
export { conformanceSuite, zeroRequest, nest, encodeBinary, decodeBinary, type Requester } from './conformance.ts';
export { exampleRequest } from '../pages/openapi.ts';
