// The OpenAI strategy's logic, a port of plugins/openai-core/src/{config,
// request}.rs: configuration and request building. Answers are read by the
// host (the `classify` import, in plugin.js). Pure functions (no imports
// from the host), so `node --test` can run them natively.

import { asciiLower, get, has, isObject, jsonKind, parseConfig, parseJson, stringify, strategyError, trim } from './sdk.js';

export const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
export const DEFAULT_MODEL = 'gpt-4o-mini';
export const DEFAULT_API_KEY_SECRET = 'api-key';
const KNOWN_KEYS = ['base_url', 'model', 'api_key_secret', 'default_params', 'extra_headers'];

// ---------------------------------------------------------------- config

// Rust's `char::is_whitespace` (Unicode White_Space).
const RUST_WS = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

function invalid(message) {
  return strategyError('client-error', `invalid openai plugin configuration: ${message}`);
}

/** Rust's `{:?}` of a string (what the Rust plugin's messages quote). */
export function debugStr(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\0') out += '\\0';
    else if (c < 0x20 || c === 0x7f) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

export function parseConfigText(text) {
  return configFromValue(parseConfig(text));
}

export function configFromValue(obj) {
  if (!isObject(obj)) throw invalid(`expected a JSON object, got ${jsonKind(obj)}`);
  // serde_json's map iterates in sorted order: report the same unknown key.
  const keys = Object.keys(obj).sort();
  const unknown = keys.find((k) => !KNOWN_KEYS.includes(k));
  if (unknown !== undefined) throw invalid(`unknown key ${debugStr(unknown)} (known keys: ${KNOWN_KEYS.join(', ')})`);
  const config = {
    baseUrl: DEFAULT_BASE_URL,
    baseHasPath: true,
    model: DEFAULT_MODEL,
    apiKeySecret: DEFAULT_API_KEY_SECRET,
    defaultParams: {},
    extraHeaders: [],
  };
  const present = (k) => has(obj, k) && obj[k] !== null;

  if (present('base_url')) {
    const v = obj.base_url;
    if (typeof v !== 'string') throw invalid(`base_url must be a string, got ${jsonKind(v)}`);
    const r = validateBaseUrl(v);
    if (typeof r === 'string') throw invalid(r);
    [config.baseUrl, config.baseHasPath] = r;
  }
  if (present('model')) {
    const m = obj.model;
    if (typeof m !== 'string' || trim(m) === '') throw invalid('model must be a non-empty string');
    config.model = m;
  }
  if (has(obj, 'api_key_secret')) {
    const v = obj.api_key_secret;
    if (v === null || v === '') config.apiKeySecret = undefined;
    else if (typeof v === 'string') {
      if (/[{}]/.test(v) || RUST_WS.test(v)) {
        throw invalid(`api_key_secret ${debugStr(v)} must not contain whitespace or braces`);
      }
      config.apiKeySecret = v;
    } else {
      throw invalid(`api_key_secret must be a string or null, got ${jsonKind(v)}`);
    }
  }
  if (present('default_params')) {
    const v = obj.default_params;
    if (!isObject(v)) throw invalid(`default_params must be an object, got ${jsonKind(v)}`);
    config.defaultParams = { ...v };
  }
  if (present('extra_headers')) {
    const v = obj.extra_headers;
    if (!isObject(v)) throw invalid(`extra_headers must be an object, got ${jsonKind(v)}`);
    for (const name of Object.keys(v).sort()) {
      const value = v[name];
      if (!isHeaderName(name)) throw invalid(`extra_headers: ${debugStr(name)} is not a valid header name`);
      if (typeof value !== 'string') throw invalid(`extra_headers.${name} must be a string, got ${jsonKind(value)}`);
      if (/[\r\n]/.test(value)) throw invalid(`extra_headers.${name} must not contain line breaks`);
      config.extraHeaders.push([name, value]);
    }
  }
  return config;
}

/** `[url without trailing slashes, has a path]`, or an error message. */
export function validateBaseUrl(url) {
  let rest;
  if (url.startsWith('https://')) rest = url.slice(8);
  else if (url.startsWith('http://')) rest = url.slice(7);
  else return `base_url ${debugStr(url)} must be an absolute http:// or https:// URL`;
  if (RUST_WS.test(url) || /[\u0000-\u001f\u007f-\u009f]/.test(url)) return `base_url ${debugStr(url)} must not contain whitespace`;
  if (/[?#]/.test(url)) return `base_url ${debugStr(url)} must not have a query or fragment`;
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  const host = authority.split('@').pop();
  if (host === '' || host.startsWith(':')) return `base_url ${debugStr(url)} has no host`;
  const trimmed = url.replace(/\/+$/, '');
  const hasPath = path.replace(/^\/+|\/+$/g, '') !== '';
  return [trimmed, hasPath];
}

function isHeaderName(name) {
  return /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(name);
}

// ---------------------------------------------------------------- request

export const PARAM_OVERRIDE_PREFIX = 'param.';
export const CHAT = 'chat';
export const EMBEDDINGS = 'embeddings';

/** The host classifier's name of each endpoint's answers. */
export const API = { [CHAT]: 'openai-chat', [EMBEDDINGS]: 'openai-embeddings' };

export function resolveEndpoint(endpoint) {
  if (endpoint === undefined || endpoint === null) return CHAT;
  let path = trim(endpoint).replace(/\/+$/, '');
  if (path.startsWith('/')) path = path.slice(1);
  if (path.startsWith('v1/')) path = path.slice(3);
  if (path === '' || path === 'chat/completions') return CHAT;
  if (path === 'embeddings') return EMBEDDINGS;
  throw strategyError(
    'client-error',
    `unsupported endpoint ${debugStr(endpoint)}: the openai strategy supports /v1/chat/completions and /v1/embeddings`,
  );
}

function endpointPath(endpoint) {
  return endpoint === CHAT ? '/v1/chat/completions' : '/v1/embeddings';
}

export function joinUrl(config, endpoint) {
  const path = endpointPath(endpoint);
  return config.baseHasPath ? config.baseUrl + path.slice(3) : config.baseUrl + path;
}

/** The SDK's `Item::params_object`. */
export function paramsObject(item) {
  if (trim(item.params) === '') return {};
  let value;
  try {
    value = parseJson(item.params);
  } catch (e) {
    throw strategyError('client-error', `item ${debugStr(item.id)}: params is not valid JSON: ${e.message}`);
  }
  if (isObject(value)) return value;
  throw strategyError('client-error', `item ${debugStr(item.id)}: params must be a JSON object, got ${jsonKind(value)}`);
}

export function buildBody(config, item, endpoint, state) {
  const body = { ...config.defaultParams, ...paramsObject(item) };
  if (!has(body, 'model') || body.model === null) body.model = config.model;
  const user = () => ({ role: 'user', content: item.prompt });
  if (endpoint === CHAT) {
    const messages = get(body, 'messages');
    if (messages === undefined || messages === null) {
      if (item.prompt === '') {
        throw strategyError('client-error', `item ${debugStr(item.id)} has neither a prompt nor params.messages`);
      }
      body.messages = [user()];
    } else if (Array.isArray(messages)) {
      if (item.prompt !== '') body.messages = [...messages, user()];
    } else {
      throw strategyError(
        'client-error',
        `item ${debugStr(item.id)}: params.messages must be an array, got ${jsonKind(messages)}`,
      );
    }
  } else {
    const input = get(body, 'input');
    if (input === undefined || input === null) {
      if (item.prompt === '') {
        throw strategyError('client-error', `item ${debugStr(item.id)} has neither a prompt nor params.input`);
      }
      body.input = item.prompt;
    }
  }
  applyOverrides(body, state);
  if (get(body, 'stream') === true) {
    throw strategyError(
      'client-error',
      `item ${debugStr(item.id)}: streaming (stream: true) is not supported; the strategy needs the whole response`,
    );
  }
  return body;
}

export function applyOverrides(body, state) {
  for (const [key, value] of state) {
    if (!key.startsWith(PARAM_OVERRIDE_PREFIX)) continue;
    const field = key.slice(PARAM_OVERRIDE_PREFIX.length);
    if (field === '') continue;
    let parsed;
    try {
      parsed = parseJson(value);
    } catch {
      parsed = value;
    }
    body[field] = parsed;
  }
}

export function headers(config) {
  let out = [['content-type', 'application/json']];
  if (config.apiKeySecret !== undefined) out.push(['authorization', `Bearer {{secret:${config.apiKeySecret}}}`]);
  for (const [name, value] of config.extraHeaders) {
    out = out.filter(([n]) => asciiLower(n) !== asciiLower(name));
    out.push([name, value]);
  }
  return out;
}

/** `{endpoint, method, url, headers, body}` for one attempt. */
export function buildRequest(config, item, state) {
  const endpoint = resolveEndpoint(item.endpoint);
  const body = buildBody(config, item, endpoint, state);
  return { endpoint, method: 'POST', url: joinUrl(config, endpoint), headers: headers(config), body: stringify(body) };
}
