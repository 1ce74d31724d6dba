// What the plugin needs besides the host's classification (the `classify`
// import reads every answer: output, usage, classes, messages): JSON that
// keeps every digit of a large integer, Rust's string semantics for the
// configuration messages, and the error records.

// ---------------------------------------------------------------- JSON

const BIG_INTEGER = /^-?[0-9]+$/;

/**
 * `JSON.parse`, except that an integer beyond 2^53 keeps every digit (a
 * BigInt), as serde_json keeps it: a `seed` of 12345678901234567 must reach
 * the provider as written.
 */
export function parseJson(text) {
  return JSON.parse(text, (_key, value, context) =>
    typeof value === 'number' && !Number.isSafeInteger(value) && BIG_INTEGER.test(context?.source ?? '')
      ? BigInt(context.source)
      : value,
  );
}

/** `JSON.stringify`, printing a BigInt as its digits. */
export function stringify(value) {
  return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? JSON.rawJSON(v.toString()) : v));
}

export function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function has(v, key) {
  return isObject(v) && Object.prototype.hasOwnProperty.call(v, key);
}

export function get(v, key) {
  return has(v, key) ? v[key] : undefined;
}

/** A short English name of a JSON value's kind, for error messages. */
export function jsonKind(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return 'a boolean';
  if (typeof v === 'number' || typeof v === 'bigint') return 'a number';
  if (typeof v === 'string') return 'a string';
  if (Array.isArray(v)) return 'an array';
  return 'an object';
}

// ---------------------------------------------------------------- text

// Rust's `char::is_whitespace` (Unicode White_Space).
const WS = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const TRIM = new RegExp(`^[${WS}]+|[${WS}]+$`, 'g');

/** Rust's `str::trim`. */
export function trim(s) {
  return s.replace(TRIM, '');
}

/** Rust's `to_ascii_lowercase`. */
export function asciiLower(s) {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
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

/** The Rust SDK's `classify::from_http_error`, for the `http.send` import. */
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

/** The Rust SDK's `parse_config`: empty text and `null` mean `{}`. */
export function parseConfig(text) {
  if (trim(text) === '') return {};
  let value;
  try {
    value = parseJson(text);
  } catch (e) {
    throw strategyError('client-error', `plugin configuration is not valid JSON: ${e.message}`);
  }
  if (value === null) return {};
  if (isObject(value)) return value;
  throw strategyError('client-error', `plugin configuration must be a JSON object, got ${jsonKind(value)}`);
}
