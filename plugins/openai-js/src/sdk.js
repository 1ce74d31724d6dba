// The parts of the Rust SDK (plugins/sdk) this plugin needs, ported line by
// line so the JS plugin classifies and reports exactly as the Rust one:
// text helpers, error classification, usage mapping.

import { asF64, asU64, get, isObject, parseJson, stringify } from './json.js';

// ---------------------------------------------------------------- text

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Rust's `char::is_whitespace` (Unicode White_Space).
const WS = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const TRIM = new RegExp(`^[${WS}]+|[${WS}]+$`, 'g');
const TRIM_START = new RegExp(`^[${WS}]+`);

/** Rust's `str::trim`. */
export function trim(s) {
  return s.replace(TRIM, '');
}
export function trimStart(s) {
  return s.replace(TRIM_START, '');
}
/** Rust's `to_ascii_lowercase`. */
export function asciiLower(s) {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}
export function utf8Len(s) {
  return encoder.encode(s).length;
}

/** The longest prefix of `text` of at most `maxBytes` UTF-8 bytes. */
export function truncate(text, maxBytes) {
  const bytes = encoder.encode(text);
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return decoder.decode(bytes.subarray(0, end));
}

/** `text` cut to at most `maxBytes` bytes, with `…` appended when it was cut. */
export function excerpt(text, maxBytes) {
  const cut = truncate(text, maxBytes);
  return cut.length === text.length ? cut : cut + '…';
}

/** `body` decoded as UTF-8, invalid sequences replaced. */
export function bodyText(body) {
  return typeof body === 'string' ? body : decoder.decode(body);
}

export function header(headers, name) {
  const lower = asciiLower(name);
  for (const [k, v] of headers) if (asciiLower(k) === lower) return v;
  return undefined;
}

// ---------------------------------------------------------------- errors

export function strategyError(klass, message) {
  return {
    class: klass,
    message,
    httpStatus: undefined,
    retryAfterMs: undefined,
    usage: undefined,
    responseBody: undefined,
  };
}

export const MAX_MESSAGE_BYTES = 1024;

export function classForStatus(status) {
  if (status === 429) return 'rate-limited';
  if (status === 401 || status === 403) return 'auth';
  if (status === 413) return 'too-large';
  if ([400, 404, 405, 410, 422].includes(status)) return 'client-error';
  if (status === 408) return 'timeout';
  if (status === 409) return 'overloaded';
  if (status >= 500 && status <= 599) return 'overloaded';
  return 'other';
}

const REASONS = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  529: 'Overloaded',
};

export function reasonPhrase(status) {
  return REASONS[status] ?? '';
}

function tryParse(text) {
  try {
    return { ok: true, value: parseJson(text) };
  } catch {
    return { ok: false };
  }
}

/** The SDK's `classify::from_http`. */
export function fromHttp(status, headers, body) {
  const parsed = tryParse(body);
  const json = parsed.ok ? parsed.value : undefined;
  const reason = reasonPhrase(status);
  const head = reason === '' ? `HTTP ${status}` : `HTTP ${status} ${reason}`;
  const m = providerMessage(parsed.ok, json, body);
  const err = strategyError(classForStatus(status), m === undefined ? head : `${head}: ${m}`);
  err.httpStatus = status;
  let wait;
  const ms = header(headers, 'retry-after-ms');
  if (ms !== undefined) wait = parseRetryAfterMsHeader(ms);
  if (wait === undefined) {
    const secs = header(headers, 'retry-after');
    if (secs !== undefined) wait = parseRetryAfterHeader(secs);
  }
  if (wait === undefined && parsed.ok) wait = retryInfoDelayMs(json);
  if (wait === undefined && status === 429) wait = parseTryAgainIn(body);
  err.retryAfterMs = wait;
  if (parsed.ok) err.responseBody = body;
  return err;
}

/** The SDK's `classify::provider_message`. */
export function providerMessage(isJson, json, body) {
  if (isJson) {
    const error = get(json, 'error');
    const candidates = [get(error, 'message'), error, get(json, 'message'), get(json, 'detail')];
    for (const c of candidates) {
      if (typeof c === 'string' && trim(c) !== '') return excerpt(trim(c), MAX_MESSAGE_BYTES);
      if (Array.isArray(c)) return excerpt(stringify(c), MAX_MESSAGE_BYTES);
    }
  }
  const t = trim(body);
  return t === '' ? undefined : excerpt(t, MAX_MESSAGE_BYTES);
}

/** The SDK's `classify::from_http_error`, for the `http.send` import. */
export function fromHttpError(e) {
  const [klass, prefix] = {
    denied: ['client-error', 'egress denied'],
    timeout: ['timeout', 'request timed out'],
    network: ['network', 'network error'],
    'invalid-request': ['client-error', 'invalid request'],
    'too-large': ['too-large', 'body too large'],
  }[e.tag] ?? ['other', 'http error'];
  return strategyError(klass, `${prefix}: ${e.val}`);
}

// ---------------------------------------------------------------- durations

const MS = 1000000n;
const U128_MAX = (1n << 128n) - 1n;

function decimalToNs(number, factor) {
  const dot = number.indexOf('.');
  const int = dot < 0 ? number : number.slice(0, dot);
  let frac = dot < 0 ? '' : number.slice(dot + 1);
  if (int === '' && frac === '') return undefined;
  if (!/^[0-9]*$/.test(int) || !/^[0-9]*$/.test(frac)) return undefined;
  frac = frac.slice(0, 18);
  const scale = 10n ** BigInt(frac.length);
  const mantissa = (int === '' ? 0n : BigInt(int)) * scale + (frac === '' ? 0n : BigInt(frac));
  const total = mantissa * factor;
  // Rust computes this in u128 and gives up on overflow.
  if (BigInt(int === '' ? 0 : int) > U128_MAX || mantissa > U128_MAX || total > U128_MAX) return undefined;
  return (total + scale - 1n) / scale;
}

function nsToMs(ns) {
  const ms = (ns + MS - 1n) / MS;
  return ms > 18446744073709551615n ? 18446744073709551615n : ms;
}

export function parseRetryAfterMsHeader(value) {
  const ns = decimalToNs(trim(value), MS);
  return ns === undefined ? undefined : nsToMs(ns);
}

export function parseRetryAfterHeader(value) {
  const ns = decimalToNs(trim(value), 1000000000n);
  return ns === undefined ? undefined : nsToMs(ns);
}

const UNITS = [
  [['ns'], 1n],
  [['us', 'µs', 'μs'], 1000n],
  [['ms', 'msec', 'msecs', 'millisecond', 'milliseconds'], 1000000n],
  [['s', 'sec', 'secs', 'second', 'seconds'], 1000000000n],
  [['m', 'min', 'mins', 'minute', 'minutes'], 60000000000n],
  [['h', 'hr', 'hrs', 'hour', 'hours'], 3600000000000n],
];

function unitNs(unit) {
  const lower = asciiLower(unit);
  for (const [names, ns] of UNITS) if (names.includes(lower)) return ns;
  return undefined;
}

// Rust's `char::is_alphabetic`, approximated without Unicode property
// escapes (StarlingMonkey is built without ICU): ASCII letters, and other
// characters that have a case mapping (µ, μ, ...).
function isAlphabetic(ch) {
  return /[A-Za-z]/.test(ch) || (ch.codePointAt(0) > 0x7f && ch.toLowerCase() !== ch.toUpperCase());
}

function alphabeticPrefix(s) {
  let n = 0;
  for (const ch of s) {
    if (!isAlphabetic(ch)) break;
    n += ch.length;
  }
  return s.slice(0, n);
}

/** The SDK's `classify::parse_duration_ms`. */
export function parseDurationMs(text) {
  let rest = trimStart(text);
  let total = 0n;
  let any = false;
  for (;;) {
    const numLen = /^[0-9.]*/.exec(rest)[0].length;
    if (numLen === 0) break;
    const number = rest.slice(0, numLen);
    const unitStart = rest.slice(numLen).replace(/^ +/, '');
    const unit = alphabeticPrefix(unitStart);
    const factor = unitNs(unit);
    if (factor === undefined) break;
    const ns = decimalToNs(number, factor);
    if (ns === undefined) break;
    total += ns;
    any = true;
    rest = unitStart.slice(unit.length);
    if (!/^[0-9]/.test(rest)) break;
  }
  return any ? nsToMs(total) : undefined;
}

/** The SDK's `classify::parse_try_again_in`. */
export function parseTryAgainIn(text) {
  const lower = asciiLower(text);
  for (const needle of ['try again in ', 'retry in ', 'retry after ']) {
    let from = 0;
    for (;;) {
      const pos = lower.indexOf(needle, from);
      if (pos < 0) break;
      const start = pos + needle.length;
      const ms = parseDurationMs(text.slice(start));
      if (ms !== undefined) return ms;
      from = start;
    }
  }
  return undefined;
}

function retryInfoDelayMs(json) {
  const details = get(get(json, 'error'), 'details');
  if (!Array.isArray(details)) return undefined;
  for (const d of details) {
    const delay = get(d, 'retryDelay');
    if (typeof delay === 'string') {
      const ms = parseDurationMs(delay);
      if (ms !== undefined) return ms;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------- usage

function asCount(v) {
  const u = asU64(v);
  if (u !== undefined) return u;
  const f = asF64(v);
  if (f !== undefined && Number.isFinite(f) && f >= 0 && Number.isInteger(f) && f < 1e18) return BigInt(f);
  return undefined;
}

/** The SDK's `usage::from_openai` (u64 fields as BigInt, as the bindings want). */
export function usageFromOpenai(value) {
  const inner = get(value, 'usage');
  const usage = isObject(inner) ? inner : value;
  if (!isObject(usage)) return undefined;
  const num = (v) => (v === undefined ? undefined : asCount(v));
  const input = num(get(usage, 'prompt_tokens')) ?? num(get(usage, 'input_tokens'));
  const output = num(get(usage, 'completion_tokens')) ?? num(get(usage, 'output_tokens'));
  if (input === undefined && output === undefined) return undefined;
  // Option::or: a present `null` counts as present.
  const or = (a, b) => (a !== undefined ? a : b);
  const promptDetails = or(get(usage, 'prompt_tokens_details'), get(usage, 'input_tokens_details'));
  const completionDetails = or(get(usage, 'completion_tokens_details'), get(usage, 'output_tokens_details'));
  const detail = (d, key) => (d === undefined ? undefined : num(get(d, key)));
  return {
    inputTokens: input ?? 0n,
    outputTokens: output ?? 0n,
    cachedInputTokens: detail(promptDetails, 'cached_tokens'),
    cacheWriteTokens: num(get(usage, 'cache_write_tokens')) ?? detail(promptDetails, 'cache_write_tokens'),
    reasoningTokens: detail(completionDetails, 'reasoning_tokens'),
  };
}

/** The SDK's `parse_config`: empty text and `null` mean `{}`. */
export function parseConfig(text) {
  if (trim(text) === '') return Object.create(null);
  let value;
  try {
    value = parseJson(text);
  } catch (e) {
    throw strategyError('client-error', `plugin configuration is not valid JSON: ${e.message}`);
  }
  if (value === null) return Object.create(null);
  if (isObject(value)) return value;
  const kind = Array.isArray(value)
    ? 'an array'
    : typeof value === 'string'
      ? 'a string'
      : typeof value === 'boolean'
        ? 'a boolean'
        : 'a number';
  throw strategyError('client-error', `plugin configuration must be a JSON object, got ${kind}`);
}
