// The OpenAI strategy's logic, a port of plugins/openai-core/src/{config,request,
// response}.rs: configuration, request building, response translation and
// OpenAI error refinements. Pure functions (no imports from the host), so
// `node --test` can run them natively.

import {
  F64,
  copyObject,
  get,
  has,
  isObject,
  jsonKind,
  newObject,
  parseJson,
  stringify,
} from './json.js';
import {
  MAX_MESSAGE_BYTES,
  asciiLower,
  bodyText,
  excerpt,
  fromHttp,
  parseConfig,
  providerMessage,
  strategyError,
  trim,
  trimStart,
  usageFromOpenai,
} from './sdk.js';

export const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
export const DEFAULT_MODEL = 'gpt-4o-mini';
export const DEFAULT_API_KEY_SECRET = 'api-key';
const KNOWN_KEYS = ['base_url', 'model', 'api_key_secret', 'default_params', 'extra_headers'];
export const MAX_EXCERPT_BYTES = 2048;

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
    defaultParams: newObject(),
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
    config.defaultParams = copyObject(v);
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
  if (trim(item.params) === '') return newObject();
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
  const body = copyObject(config.defaultParams);
  Object.assign(body, paramsObject(item));
  if (!has(body, 'model') || body.model === null) body.model = config.model;
  const user = () => {
    const m = newObject();
    m.role = 'user';
    m.content = item.prompt;
    return m;
  };
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

// ---------------------------------------------------------------- response

/** Translates a whole HTTP answer: a success record, or throws a strategy error. */
export function interpret(endpoint, status, hdrs, body) {
  if (status >= 200 && status < 300) return parseSuccess(endpoint, status, hdrs, body);
  throw classifyError(status, hdrs, body);
}

export function classifyError(status, hdrs, body) {
  const text = bodyText(body);
  let json;
  try {
    json = parseJson(text);
  } catch {
    json = undefined;
  }
  return refine(fromHttp(status, hdrs, text), status, json);
}

export function refine(err, status, json) {
  const nested = get(json, 'error');
  const error = isObject(nested) ? nested : undefined;
  const field = (name) => {
    const v = get(error !== undefined ? error : json, name);
    return typeof v === 'string' ? v : '';
  };
  const code = field('code');
  const kind = field('type');
  const message = field('message');
  const is = (s) => code === s || kind === s;
  const overTpm = status === 429 && trimStart(message).startsWith('Request too large');
  const overContext =
    status === 400 &&
    (is('context_length_exceeded') ||
      is('exceed_context_size_error') ||
      asciiLower(message).includes('maximum context length'));
  let klass;
  if (is('insufficient_quota') || is('billing_hard_limit_reached') || status === 402) klass = 'quota-exhausted';
  else if (is('invalid_api_key')) klass = 'auth';
  else if (overTpm || overContext) klass = 'too-large';
  if (klass !== undefined) {
    err.class = klass;
    if (klass !== 'rate-limited') err.retryAfterMs = undefined;
  }
  return err;
}

export function parseSuccess(endpoint, status, hdrs, body) {
  const text = bodyText(body);
  let json;
  try {
    json = parseJson(text);
  } catch (e) {
    const shown = trim(text) === '' ? 'the body is empty' : `body: ${excerpt(text, MAX_EXCERPT_BYTES)}`;
    const err = strategyError('invalid-response', `HTTP ${status} response is not valid JSON (${e.message}); ${shown}`);
    err.httpStatus = status;
    throw err;
  }
  const invalidResponse = (message) => {
    const e = strategyError('invalid-response', message);
    e.httpStatus = status;
    e.responseBody = text;
    e.usage = usageFromOpenai(json);
    return e;
  };
  if (!isObject(json)) throw invalidResponse(`HTTP ${status} response is ${jsonKind(json)}, expected an object`);
  const payloadKey = endpoint === CHAT ? 'choices' : 'data';
  if (!has(json, payloadKey)) {
    const error = get(json, 'error');
    if (error !== undefined && error !== null) throw embeddedError(status, hdrs, text, json, error);
  }
  const metadata = newObject();
  for (const key of ['model', 'id']) {
    const v = get(json, key);
    if (v !== undefined && v !== null) metadata[key] = v;
  }
  let output;
  if (endpoint === CHAT) {
    const choices = get(json, 'choices');
    const first = Array.isArray(choices) ? choices[0] : undefined;
    if (first === undefined) throw invalidResponse('response has no choices');
    const reason = get(first, 'finish_reason');
    if (reason !== undefined && reason !== null) metadata.finish_reason = reason;
    const message = get(first, 'message');
    if (!isObject(message)) throw invalidResponse('choices[0] has no message');
    const r = chatOutput(message);
    if (r.error !== undefined) throw invalidResponse(r.error);
    output = r.output;
  } else {
    const data = get(json, 'data');
    if (!Array.isArray(data)) throw invalidResponse('response has no data array');
    output = stringify(data);
  }
  return {
    output,
    usage: usageFromOpenai(json),
    responseBody: text,
    metadata: stringify(metadata),
  };
}

function chatOutput(message) {
  const content = get(message, 'content');
  if (typeof content === 'string') return { output: content };
  if (Array.isArray(content)) {
    let out = '';
    for (const p of content) {
      const t = get(p, 'text');
      if (typeof t === 'string') out += t;
      else if (typeof p === 'string') out += p;
    }
    return { output: out };
  }
  const hasCalls = (key) => {
    const v = get(message, key);
    return Array.isArray(v) ? v.length > 0 : isObject(v);
  };
  if (hasCalls('tool_calls') || hasCalls('function_call')) return { output: stringify(message) };
  const refusal = get(message, 'refusal');
  if (typeof refusal === 'string') return { error: `the model refused: ${excerpt(refusal, MAX_MESSAGE_BYTES)}` };
  return { error: 'choices[0].message has no content and no tool calls' };
}

function embeddedError(status, hdrs, text, json, error) {
  const raw = get(error, 'code');
  let code;
  if ((typeof raw === 'number' && Number.isInteger(raw)) || typeof raw === 'bigint') {
    const n = Number(raw);
    if (n >= 400 && n < 600) code = n;
  }
  const base =
    code !== undefined
      ? refine(fromHttp(code, hdrs, text), code, json)
      : refine(strategyError('other', ''), status, json);
  const message = providerMessage(true, json, text) ?? '';
  base.message = `HTTP ${status} response carries an error: ${message}`;
  base.httpStatus = status;
  base.responseBody = text;
  return base;
}


