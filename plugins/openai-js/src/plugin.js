// The `llm-strategy` export of the JavaScript openai plugin, for either
// transport; the entry points strategy.js (the `http.send` import) and
// strategy-fetch.js (`fetch`) pick one. Requests are built by ./openai.js;
// answers are read by the host's classifier (the `classify` import: the
// same code as the Rust plugin's, so outputs, usage and classes match).

import { classify } from 'batchllm:strategy/classify@0.2.0';
import { config as hostConfig, log } from 'batchllm:strategy/host@0.2.0';
import { send as httpSend } from 'batchllm:strategy/http@0.2.0';
import { API, buildRequest, parseConfigText, debugStr } from './openai.js';
import { fromHttpError, strategyError } from './sdk.js';

// The configuration, parsed once per instance (the same for the whole run).
let CONFIG;

function config() {
  if (CONFIG === undefined) {
    try {
      CONFIG = { ok: true, value: parseConfigText(hostConfig()) };
    } catch (e) {
      CONFIG = { ok: false, error: e };
    }
  }
  if (!CONFIG.ok) throw { ...CONFIG.error };
  return CONFIG.value;
}

function errorMessage(e) {
  return String(e && e.message !== undefined ? e.message : e);
}

/** Sends through `fetch`, which StarlingMonkey implements on wasi:http. */
export async function sendFetch(request, _timeoutMs) {
  let response;
  try {
    response = await fetch(request.url, { method: request.method, headers: request.headers, body: request.body });
  } catch (e) {
    throw strategyError('network', `network error: ${errorMessage(e)}`);
  }
  let body;
  try {
    body = new Uint8Array(await response.arrayBuffer());
  } catch (e) {
    throw strategyError('network', `network error: reading the response body: ${errorMessage(e)}`);
  }
  return { status: response.status, headers: [...response.headers], body };
}

/** Sends through the host's `http.send` import. */
export function sendImport(request, timeoutMs) {
  try {
    return httpSend({
      method: request.method,
      url: request.url,
      headers: request.headers,
      body: new TextEncoder().encode(request.body),
      timeoutMs,
    });
  } catch (e) {
    throw fromHttpError(e && e.payload !== undefined ? e.payload : e);
  }
}

/** The strategy, sending with `transport(request, timeoutMs)`. */
export function makeStrategy(transport) {
  return {
    prepare(configText) {
      const parsed = parseConfigText(configText);
      const authorization = parsed.apiKeySecret === undefined ? 'none' : `secret ${debugStr(parsed.apiKeySecret)}`;
      log('info', `openai strategy: base_url=${parsed.baseUrl} model=${parsed.model} authorization=${authorization}`);
      CONFIG = { ok: true, value: parsed };
    },

    async execute(item, attempt, state) {
      const request = buildRequest(config(), item, state);
      log('trace', `POST ${request.url} (attempt ${attempt.number}, timeout ${attempt.timeLeftMs} ms)`);
      const response = await transport(request, attempt.timeLeftMs);
      try {
        return classify(API[request.endpoint], response.status, response.headers, response.body);
      } catch (e) {
        throw e && e.payload !== undefined ? e.payload : e;
      }
    },

    onError(_item, _error, _attempt, _state) {
      return [];
    },

    cleanup() {},
  };
}
