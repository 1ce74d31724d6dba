// JSON exactly as the Rust plugins see it (serde_json 1.0.154 `Value`), so
// that this plugin produces byte-identical outputs and error messages:
//
// - `parseJson(text)` follows serde_json's grammar and raises serde_json's
//   error messages (`EOF while parsing a string at line 1 column 57`);
//   integers keep their exact value (a BigInt beyond 2^53), and a float that
//   happens to be integral (`1.0`, `1e2`, `-0`) is an `F64` so it is printed
//   back as serde_json prints it (`1.0`, `100.0`, `-0.0`).
// - `stringify(value)` prints like serde_json's `Value::to_string()`:
//   compact, object keys sorted (serde_json's map is a BTreeMap), floats in
//   the shortest round-trip form laid out as serde_json's float printer does.

/** An integral float read from JSON, e.g. `2.0`; other floats are plain numbers. */
export class F64 {
  constructor(value) {
    this.value = value;
  }
}

export class JsonSyntaxError extends Error {}

const MESSAGES = {
  eofList: 'EOF while parsing a list',
  eofObject: 'EOF while parsing an object',
  eofString: 'EOF while parsing a string',
  eofValue: 'EOF while parsing a value',
  colon: 'expected `:`',
  listCommaOrEnd: 'expected `,` or `]`',
  objectCommaOrEnd: 'expected `,` or `}`',
  ident: 'expected ident',
  value: 'expected value',
  escape: 'invalid escape',
  number: 'invalid number',
  range: 'number out of range',
  control: 'control character (\\u0000-\\u001F) found while parsing a string',
  key: 'key must be a string',
  loneSurrogate: 'lone leading surrogate in hex escape',
  trailingComma: 'trailing comma',
  trailing: 'trailing characters',
  hexEnd: 'unexpected end of hex escape',
  recursion: 'recursion limit exceeded',
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const U64_MAX = 18446744073709551615n;

class Parser {
  constructor(text) {
    this.b = encoder.encode(text);
    this.i = 0;
    this.depth = 128;
  }

  fail(code, index) {
    let line = 1;
    let lineStart = 0;
    for (let k = 0; k < index; k++) {
      if (this.b[k] === 0x0a) {
        line++;
        lineStart = k + 1;
      }
    }
    return new JsonSyntaxError(`${MESSAGES[code]} at line ${line} column ${index - lineStart}`);
  }
  // serde_json's `error` (position of the next unread byte) ...
  error(code) {
    return this.fail(code, this.i);
  }
  // ... and `peek_error` (just past the byte being looked at).
  peekError(code) {
    return this.fail(code, Math.min(this.b.length, this.i + 1));
  }
  peek() {
    return this.i < this.b.length ? this.b[this.i] : -1;
  }
  whitespace() {
    for (;;) {
      const c = this.peek();
      if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) this.i++;
      else return c;
    }
  }

  value() {
    const c = this.whitespace();
    switch (c) {
      case -1:
        throw this.peekError('eofValue');
      case 0x6e: // n
        this.i++;
        this.ident('ull');
        return null;
      case 0x74: // t
        this.i++;
        this.ident('rue');
        return true;
      case 0x66: // f
        this.i++;
        this.ident('alse');
        return false;
      case 0x2d: // -
        this.i++;
        return this.number(false);
      case 0x22: // "
        this.i++;
        return this.string();
      case 0x5b: {
        // [
        if (--this.depth === 0) throw this.peekError('recursion');
        this.i++;
        const list = this.list();
        this.depth++;
        return list;
      }
      case 0x7b: {
        // {
        if (--this.depth === 0) throw this.peekError('recursion');
        this.i++;
        const obj = this.object();
        this.depth++;
        return obj;
      }
      default:
        if (c >= 0x30 && c <= 0x39) return this.number(true);
        throw this.peekError('value');
    }
  }

  ident(rest) {
    for (let k = 0; k < rest.length; k++) {
      if (this.i >= this.b.length) throw this.error('eofValue');
      const c = this.b[this.i++];
      if (c !== rest.charCodeAt(k)) throw this.error('ident');
    }
  }

  list() {
    const out = [];
    let first = true;
    for (;;) {
      let c = this.whitespace();
      if (c === 0x5d) {
        this.i++;
        return out;
      }
      if (c === 0x2c && !first) {
        this.i++;
        c = this.whitespace();
      } else if (c === -1) {
        throw this.peekError('eofList');
      } else if (first) {
        first = false;
      } else {
        throw this.peekError('listCommaOrEnd');
      }
      if (c === 0x5d) throw this.peekError('trailingComma');
      if (c === -1) throw this.peekError('eofValue');
      out.push(this.value());
    }
  }

  object() {
    const out = Object.create(null);
    let first = true;
    for (;;) {
      let c = this.whitespace();
      if (c === 0x7d) {
        this.i++;
        return out;
      }
      if (c === 0x2c && !first) {
        this.i++;
        c = this.whitespace();
      } else if (c === -1) {
        throw this.peekError('eofObject');
      } else if (first) {
        first = false;
      } else {
        throw this.peekError('objectCommaOrEnd');
      }
      if (c === 0x7d) throw this.peekError('trailingComma');
      if (c === -1) throw this.peekError('eofValue');
      if (c !== 0x22) throw this.peekError('key');
      this.i++;
      const key = this.string();
      c = this.whitespace();
      if (c === 0x3a) this.i++;
      else if (c === -1) throw this.peekError('eofObject');
      else throw this.peekError('colon');
      out[key] = this.value();
    }
  }

  string() {
    const b = this.b;
    let out = '';
    let start = this.i;
    for (;;) {
      while (this.i < b.length && b[this.i] !== 0x22 && b[this.i] !== 0x5c && b[this.i] >= 0x20) this.i++;
      if (this.i === b.length) throw this.error('eofString');
      const c = b[this.i];
      if (c === 0x22) {
        out += decoder.decode(b.subarray(start, this.i));
        this.i++;
        return out;
      }
      if (c === 0x5c) {
        out += decoder.decode(b.subarray(start, this.i));
        this.i++;
        out += this.escape();
        start = this.i;
        continue;
      }
      this.i++;
      throw this.error('control');
    }
  }

  escape() {
    if (this.i >= this.b.length) throw this.error('eofString');
    const c = this.b[this.i++];
    switch (c) {
      case 0x22:
        return '"';
      case 0x5c:
        return '\\';
      case 0x2f:
        return '/';
      case 0x62:
        return '\b';
      case 0x66:
        return '\f';
      case 0x6e:
        return '\n';
      case 0x72:
        return '\r';
      case 0x74:
        return '\t';
      case 0x75:
        return this.unicodeEscape();
      default:
        throw this.error('escape');
    }
  }

  hex4() {
    if (this.i + 4 > this.b.length) {
      this.i = this.b.length;
      throw this.error('eofString');
    }
    let n = 0;
    let ok = true;
    for (let k = 0; k < 4; k++) {
      const c = this.b[this.i + k];
      let d;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else ok = false;
      n = n * 16 + (d ?? 0);
    }
    this.i += 4;
    if (!ok) throw this.error('escape');
    return n;
  }

  unicodeEscape() {
    const n = this.hex4();
    if (n >= 0xdc00 && n <= 0xdfff) throw this.error('loneSurrogate');
    if (n < 0xd800 || n > 0xdbff) return String.fromCharCode(n);
    for (const expected of [0x5c, 0x75]) {
      if (this.i >= this.b.length) throw this.error('eofString');
      const c = this.b[this.i++];
      if (c !== expected) throw this.error('hexEnd');
    }
    const n2 = this.hex4();
    if (n2 < 0xdc00 || n2 > 0xdfff) throw this.error('loneSurrogate');
    return String.fromCharCode(n, n2);
  }

  isDigit(c) {
    return c >= 0x30 && c <= 0x39;
  }

  // serde_json's parse_integer / parse_number, with its float arithmetic
  // (not the `float_roundtrip` feature): the digits as a u64 significand,
  // converted to f64 and scaled by one power of ten.
  number(positive) {
    if (this.i >= this.b.length) throw this.error('eofValue');
    const first = this.b[this.i++];
    let sig = 0n;
    if (first === 0x30) {
      if (this.isDigit(this.peek())) throw this.peekError('number');
    } else if (first >= 0x31 && first <= 0x39) {
      sig = BigInt(first - 0x30);
      while (this.isDigit(this.peek())) {
        const next = sig * 10n + BigInt(this.peek() - 0x30);
        if (next > U64_MAX) return floatValue(this.longInteger(positive, sig));
        this.i++;
        sig = next;
      }
    } else {
      throw this.error('number');
    }
    const c = this.peek();
    if (c === 0x2e) return floatValue(this.decimal(positive, sig, 0));
    if (c === 0x65 || c === 0x45) return floatValue(this.exponent(positive, sig, 0));
    if (positive) return intValue(sig);
    // `(significand as i64).wrapping_neg() >= 0`: -0 and below i64::MIN are floats.
    if (sig === 0n || sig > I64_MAX_PLUS_1) return floatValue(-Number(sig));
    return intValue(-sig);
  }

  longInteger(positive, sig) {
    let exponent = 0;
    for (;;) {
      const c = this.peek();
      if (this.isDigit(c)) {
        this.i++;
        exponent++;
      } else if (c === 0x2e) return this.decimal(positive, sig, exponent);
      else if (c === 0x65 || c === 0x45) return this.exponent(positive, sig, exponent);
      else return this.fromParts(positive, sig, exponent);
    }
  }

  decimal(positive, sig, exponentBefore) {
    this.i++;
    let after = 0;
    while (this.isDigit(this.peek())) {
      const next = sig * 10n + BigInt(this.peek() - 0x30);
      if (next > U64_MAX) {
        // Further digits are ignored.
        while (this.isDigit(this.peek())) this.i++;
        const c = this.peek();
        if (c === 0x65 || c === 0x45) return this.exponent(positive, sig, exponentBefore + after);
        return this.fromParts(positive, sig, exponentBefore + after);
      }
      this.i++;
      sig = next;
      after--;
    }
    if (after === 0) throw this.peekError(this.i < this.b.length ? 'number' : 'eofValue');
    const c = this.peek();
    if (c === 0x65 || c === 0x45) return this.exponent(positive, sig, exponentBefore + after);
    return this.fromParts(positive, sig, exponentBefore + after);
  }

  exponent(positive, sig, startingExp) {
    this.i++;
    let positiveExp = true;
    const sign = this.peek();
    if (sign === 0x2b) this.i++;
    else if (sign === 0x2d) {
      this.i++;
      positiveExp = false;
    }
    if (this.i >= this.b.length) throw this.error('eofValue');
    const d = this.b[this.i++];
    if (!this.isDigit(d)) throw this.error('number');
    let exp = d - 0x30;
    while (this.isDigit(this.peek())) {
      const digit = this.peek() - 0x30;
      this.i++;
      if (exp * 10 + digit > I32_MAX) {
        if (sig !== 0n && positiveExp) throw this.error('range');
        while (this.isDigit(this.peek())) this.i++;
        return positive ? 0 : -0;
      }
      exp = exp * 10 + digit;
    }
    const finalExp = Math.max(I32_MIN, Math.min(I32_MAX, positiveExp ? startingExp + exp : startingExp - exp));
    return this.fromParts(positive, sig, finalExp);
  }

  fromParts(positive, sig, exponent) {
    let f = Number(sig);
    for (;;) {
      const a = Math.abs(exponent);
      if (a < POW10.length) {
        if (exponent >= 0) {
          f *= POW10[a];
          if (!Number.isFinite(f)) throw this.error('range');
        } else {
          f /= POW10[a];
        }
        break;
      }
      if (f === 0) break;
      if (exponent >= 0) throw this.error('range');
      f /= 1e308;
      exponent += 308;
    }
    return positive ? f : -f;
  }
}

const I64_MAX_PLUS_1 = 9223372036854775808n;
const I32_MAX = 2147483647;
const I32_MIN = -2147483648;
const POW10 = Array.from({ length: 309 }, (_, k) => Number(`1e${k}`));

function intValue(big) {
  return big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(big) : big;
}

function floatValue(f) {
  return Number.isInteger(f) ? new F64(f) : f;
}

/** Parses `text` as serde_json would, raising serde_json's error message. */
export function parseJson(text) {
  const p = new Parser(text);
  const value = p.value();
  if (p.whitespace() !== -1) throw p.peekError('trailing');
  return value;
}

// ---------------------------------------------------------------- values

export function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof F64);
}
export function isNumber(v) {
  return typeof v === 'number' || typeof v === 'bigint' || v instanceof F64;
}
/** serde_json's `as_u64`: a non-negative integer (not a float). */
export function asU64(v) {
  if (typeof v === 'bigint') return v >= 0n ? v : undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return BigInt(v);
  return undefined;
}
/** serde_json's `as_f64`. */
export function asF64(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof F64) return v.value;
  return undefined;
}
/** The value at `key` of an object, `undefined` otherwise (serde_json's `get`). */
export function get(v, key) {
  if (typeof key === 'number') return Array.isArray(v) ? v[key] : undefined;
  return isObject(v) && Object.prototype.hasOwnProperty.call(v, key) ? v[key] : undefined;
}
export function has(v, key) {
  return isObject(v) && Object.prototype.hasOwnProperty.call(v, key);
}
/** A shallow copy of an object (keeps the null prototype). */
export function copyObject(v) {
  const out = Object.create(null);
  for (const k of Object.keys(v)) out[k] = v[k];
  return out;
}
export function newObject() {
  return Object.create(null);
}

/** A short English name of a JSON value's kind, for error messages. */
export function jsonKind(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return 'a boolean';
  if (isNumber(v)) return 'a number';
  if (typeof v === 'string') return 'a string';
  if (Array.isArray(v)) return 'an array';
  return 'an object';
}

// ---------------------------------------------------------------- printing

function compareKeys(a, b) {
  // BTreeMap<String, _> orders by UTF-8 bytes, i.e. by code point.
  const ca = Array.from(a);
  const cb = Array.from(b);
  const n = Math.min(ca.length, cb.length);
  for (let k = 0; k < n; k++) {
    const d = ca[k].codePointAt(0) - cb[k].codePointAt(0);
    if (d !== 0) return d;
  }
  return ca.length - cb.length;
}

function quote(s) {
  let out = '"';
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c < 0x20) {
      const short = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' }[c];
      out += short ?? '\\u00' + c.toString(16).padStart(2, '0');
    } else out += s[k];
  }
  return out + '"';
}

/** A finite float printed as serde_json 1.0.154 prints it. */
export function formatFloat(x) {
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, exp] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const e = Number(exp);
  const n = digits.length;
  let body;
  if (e >= -5 && e <= 15) {
    if (n - 1 <= e) body = digits + '0'.repeat(e - (n - 1)) + '.0';
    else if (e >= 0) body = digits.slice(0, e + 1) + '.' + digits.slice(e + 1);
    else body = '0.' + '0'.repeat(-e - 1) + digits;
  } else {
    body = digits[0] + (n > 1 ? '.' + digits.slice(1) : '') + 'e' + (e >= 0 ? '+' : '-') + Math.abs(e);
  }
  return sign + body;
}

/** `value` printed as serde_json's `Value::to_string()` prints it. */
export function stringify(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : formatFloat(v);
  if (v instanceof F64) return formatFloat(v.value);
  if (typeof v === 'string') return quote(v);
  if (Array.isArray(v)) return '[' + v.map(stringify).join(',') + ']';
  const keys = Object.keys(v).filter((k) => v[k] !== undefined);
  keys.sort(compareKeys);
  return '{' + keys.map((k) => quote(k) + ':' + stringify(v[k])).join(',') + '}';
}
