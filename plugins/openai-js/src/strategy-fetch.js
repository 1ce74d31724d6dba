// The JavaScript openai plugin on `fetch` instead of the `http.send` import
// (built as dist/openai-js-fetch.wasm). StarlingMonkey implements `fetch` on
// wasi:http, which the host routes through the same egress policy (grants,
// `{{secret:NAME}}` substitution in headers, limits, accounting), so
// requests, answers and denials are the same as through the import.
//
// One difference: a failed `fetch` is a bare `TypeError: NetworkError when
// attempting to fetch resource` whatever happened, so a timeout or an
// oversized response is classified `network` here (`timeout` / `too-large`
// with the import) until the host reconciles wasi:http failures from its own
// record of the exchange, as it already does for denials.
import { makeStrategy, sendFetch } from './plugin.js';

export const llmStrategy = makeStrategy(sendFetch);
