"""JSON exactly as the Rust plugins see it (serde_json 1.0.154 ``Value``).

So that this plugin produces byte-identical outputs and error messages:

- ``parse_json(text)`` follows serde_json's grammar and number arithmetic (a
  u64 significand scaled by one power of ten, not correctly rounded in every
  case) and raises serde_json's error messages
  (``EOF while parsing a string at line 1 column 57``). The fast path is the
  standard ``json`` module with serde's number hooks; anything it rejects, and
  the few things serde rejects but ``json`` accepts (lone surrogates, nesting
  deeper than 128), go through a byte-level port of serde_json's parser.
- ``stringify(value)`` prints like serde_json's ``Value::to_string()``:
  compact, keys sorted (serde_json's map is a BTreeMap), floats in the
  shortest round-trip form laid out as serde_json's float printer does.

Every module is imported at top level: componentize-py snapshots the
interpreter at build time.
"""

import json
import re
from decimal import Decimal

U64_MAX = 18446744073709551615
I64_MAX_PLUS_1 = 9223372036854775808
I32_MAX = 2147483647
I32_MIN = -2147483648
POW10 = [float("1e%d" % k) for k in range(309)]

MESSAGES = {
    "eofList": "EOF while parsing a list",
    "eofObject": "EOF while parsing an object",
    "eofString": "EOF while parsing a string",
    "eofValue": "EOF while parsing a value",
    "colon": "expected `:`",
    "listCommaOrEnd": "expected `,` or `]`",
    "objectCommaOrEnd": "expected `,` or `}`",
    "ident": "expected ident",
    "value": "expected value",
    "escape": "invalid escape",
    "number": "invalid number",
    "range": "number out of range",
    "control": "control character (\\u0000-\\u001F) found while parsing a string",
    "key": "key must be a string",
    "loneSurrogate": "lone leading surrogate in hex escape",
    "trailingComma": "trailing comma",
    "trailing": "trailing characters",
    "hexEnd": "unexpected end of hex escape",
    "recursion": "recursion limit exceeded",
}


class JsonSyntaxError(ValueError):
    pass


def _is_digit(c):
    return 0x30 <= c <= 0x39


class _Parser:
    def __init__(self, data):
        self.b = data
        self.n = len(data)
        self.i = 0
        self.depth = 128

    def fail(self, code, index):
        line = 1 + self.b.count(b"\n", 0, index)
        line_start = self.b.rfind(b"\n", 0, index) + 1
        return JsonSyntaxError("%s at line %d column %d" % (MESSAGES[code], line, index - line_start))

    def error(self, code):
        return self.fail(code, self.i)

    def peek_error(self, code):
        return self.fail(code, min(self.n, self.i + 1))

    def peek(self):
        return self.b[self.i] if self.i < self.n else -1

    def whitespace(self):
        while True:
            c = self.peek()
            if c in (0x20, 0x0A, 0x09, 0x0D):
                self.i += 1
            else:
                return c

    def document(self):
        value = self.value()
        if self.whitespace() != -1:
            raise self.peek_error("trailing")
        return value

    def value(self):
        c = self.whitespace()
        if c == -1:
            raise self.peek_error("eofValue")
        if c == 0x6E:
            self.i += 1
            self.ident(b"ull")
            return None
        if c == 0x74:
            self.i += 1
            self.ident(b"rue")
            return True
        if c == 0x66:
            self.i += 1
            self.ident(b"alse")
            return False
        if c == 0x2D:
            self.i += 1
            return self.number(False)
        if _is_digit(c):
            return self.number(True)
        if c == 0x22:
            self.i += 1
            return self.string()
        if c == 0x5B:
            self.depth -= 1
            if self.depth == 0:
                raise self.peek_error("recursion")
            self.i += 1
            out = self.list()
            self.depth += 1
            return out
        if c == 0x7B:
            self.depth -= 1
            if self.depth == 0:
                raise self.peek_error("recursion")
            self.i += 1
            out = self.object()
            self.depth += 1
            return out
        raise self.peek_error("value")

    def ident(self, rest):
        for expected in rest:
            if self.i >= self.n:
                raise self.error("eofValue")
            c = self.b[self.i]
            self.i += 1
            if c != expected:
                raise self.error("ident")

    def list(self):
        out = []
        first = True
        while True:
            c = self.whitespace()
            if c == 0x5D:
                self.i += 1
                return out
            if c == 0x2C and not first:
                self.i += 1
                c = self.whitespace()
            elif c == -1:
                raise self.peek_error("eofList")
            elif first:
                first = False
            else:
                raise self.peek_error("listCommaOrEnd")
            if c == 0x5D:
                raise self.peek_error("trailingComma")
            if c == -1:
                raise self.peek_error("eofValue")
            out.append(self.value())

    def object(self):
        out = {}
        first = True
        while True:
            c = self.whitespace()
            if c == 0x7D:
                self.i += 1
                return out
            if c == 0x2C and not first:
                self.i += 1
                c = self.whitespace()
            elif c == -1:
                raise self.peek_error("eofObject")
            elif first:
                first = False
            else:
                raise self.peek_error("objectCommaOrEnd")
            if c == 0x7D:
                raise self.peek_error("trailingComma")
            if c == -1:
                raise self.peek_error("eofValue")
            if c != 0x22:
                raise self.peek_error("key")
            self.i += 1
            key = self.string()
            c = self.whitespace()
            if c == 0x3A:
                self.i += 1
            elif c == -1:
                raise self.peek_error("eofObject")
            else:
                raise self.peek_error("colon")
            out[key] = self.value()

    def string(self):
        b = self.b
        parts = []
        start = self.i
        while True:
            i = self.i
            while i < self.n:
                c = b[i]
                if c == 0x22 or c == 0x5C or c < 0x20:
                    break
                i += 1
            self.i = i
            if i == self.n:
                raise self.error("eofString")
            c = b[i]
            if c == 0x22:
                parts.append(b[start:i].decode("utf-8"))
                self.i += 1
                return "".join(parts)
            if c == 0x5C:
                parts.append(b[start:i].decode("utf-8"))
                self.i += 1
                parts.append(self.escape())
                start = self.i
                continue
            self.i += 1
            raise self.error("control")

    def escape(self):
        if self.i >= self.n:
            raise self.error("eofString")
        c = self.b[self.i]
        self.i += 1
        simple = {0x22: '"', 0x5C: "\\", 0x2F: "/", 0x62: "\b", 0x66: "\f", 0x6E: "\n", 0x72: "\r", 0x74: "\t"}
        if c in simple:
            return simple[c]
        if c == 0x75:
            return self.unicode_escape()
        raise self.error("escape")

    def hex4(self):
        if self.i + 4 > self.n:
            self.i = self.n
            raise self.error("eofString")
        digits = self.b[self.i : self.i + 4]
        self.i += 4
        try:
            if not all(chr(d) in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError
            return int(digits.decode("ascii"), 16)
        except ValueError:
            raise self.error("escape") from None

    def unicode_escape(self):
        n = self.hex4()
        if 0xDC00 <= n <= 0xDFFF:
            raise self.error("loneSurrogate")
        if n < 0xD800 or n > 0xDBFF:
            return chr(n)
        for expected in (0x5C, 0x75):
            if self.i >= self.n:
                raise self.error("eofString")
            c = self.b[self.i]
            self.i += 1
            if c != expected:
                raise self.error("hexEnd")
        n2 = self.hex4()
        if n2 < 0xDC00 or n2 > 0xDFFF:
            raise self.error("loneSurrogate")
        return chr(0x10000 + ((n - 0xD800) << 10) + (n2 - 0xDC00))

    # serde_json's parse_integer / parse_number and its float arithmetic
    # (not the `float_roundtrip` feature).
    def number(self, positive):
        if self.i >= self.n:
            raise self.error("eofValue")
        first = self.b[self.i]
        self.i += 1
        sig = 0
        if first == 0x30:
            if _is_digit(self.peek()):
                raise self.peek_error("number")
        elif 0x31 <= first <= 0x39:
            sig = first - 0x30
            while _is_digit(self.peek()):
                nxt = sig * 10 + (self.peek() - 0x30)
                if nxt > U64_MAX:
                    return self.long_integer(positive, sig)
                self.i += 1
                sig = nxt
        else:
            raise self.error("number")
        c = self.peek()
        if c == 0x2E:
            return self.decimal(positive, sig, 0)
        if c in (0x65, 0x45):
            return self.exponent(positive, sig, 0)
        if positive:
            return sig
        if sig == 0 or sig > I64_MAX_PLUS_1:
            return -float(sig)
        return -sig

    def long_integer(self, positive, sig):
        exponent = 0
        while True:
            c = self.peek()
            if _is_digit(c):
                self.i += 1
                exponent += 1
            elif c == 0x2E:
                return self.decimal(positive, sig, exponent)
            elif c in (0x65, 0x45):
                return self.exponent(positive, sig, exponent)
            else:
                return self.from_parts(positive, sig, exponent)

    def decimal(self, positive, sig, exponent_before):
        self.i += 1
        after = 0
        while _is_digit(self.peek()):
            nxt = sig * 10 + (self.peek() - 0x30)
            if nxt > U64_MAX:
                while _is_digit(self.peek()):
                    self.i += 1
                if self.peek() in (0x65, 0x45):
                    return self.exponent(positive, sig, exponent_before + after)
                return self.from_parts(positive, sig, exponent_before + after)
            self.i += 1
            sig = nxt
            after -= 1
        if after == 0:
            raise self.peek_error("number" if self.i < self.n else "eofValue")
        if self.peek() in (0x65, 0x45):
            return self.exponent(positive, sig, exponent_before + after)
        return self.from_parts(positive, sig, exponent_before + after)

    def exponent(self, positive, sig, starting_exp):
        self.i += 1
        positive_exp = True
        sign = self.peek()
        if sign == 0x2B:
            self.i += 1
        elif sign == 0x2D:
            self.i += 1
            positive_exp = False
        if self.i >= self.n:
            raise self.error("eofValue")
        d = self.b[self.i]
        self.i += 1
        if not _is_digit(d):
            raise self.error("number")
        exp = d - 0x30
        while _is_digit(self.peek()):
            digit = self.peek() - 0x30
            self.i += 1
            if exp * 10 + digit > I32_MAX:
                if sig != 0 and positive_exp:
                    raise self.error("range")
                while _is_digit(self.peek()):
                    self.i += 1
                return 0.0 if positive else -0.0
            exp = exp * 10 + digit
        final = starting_exp + exp if positive_exp else starting_exp - exp
        final = max(I32_MIN, min(I32_MAX, final))
        return self.from_parts(positive, sig, final)

    def from_parts(self, positive, sig, exponent):
        f = float(sig)
        while True:
            a = abs(exponent)
            if a < len(POW10):
                if exponent >= 0:
                    f *= POW10[a]
                    if f == float("inf"):
                        raise self.error("range")
                else:
                    f /= POW10[a]
                break
            if f == 0.0:
                break
            if exponent >= 0:
                raise self.error("range")
            f /= 1e308
            exponent += 308
        return f if positive else -f


def _number(lexeme):
    text = lexeme.encode("ascii")
    p = _Parser(text)
    if text[:1] == b"-":
        p.i = 1
        value = p.number(False)
    else:
        value = p.number(True)
    if p.i != p.n:
        raise ValueError(lexeme)
    return value


def _reject(name):
    raise ValueError(name)


_LONE_RISK = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json(text):
    """Parses ``text`` as serde_json would; raises ``JsonSyntaxError`` with serde_json's message."""
    risky = _LONE_RISK.search(text) is not None or text.count("[") + text.count("{") >= 127
    if not risky:
        try:
            return json.loads(text, parse_float=_number, parse_int=_number, parse_constant=_reject)
        except (ValueError, RecursionError):
            pass
    return _Parser(text.encode("utf-8")).document()


# ---------------------------------------------------------------- printing

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _quote_char(m):
    c = m.group(0)
    return _ESCAPES.get(c) or "\\u%04x" % ord(c)


def quote(s):
    return '"' + _NEEDS_ESCAPE.sub(_quote_char, s) + '"'


def format_float(x):
    """A finite float printed as serde_json 1.0.154 prints it."""
    if x == 0.0:
        return "-0.0" if str(x).startswith("-") else "0.0"
    sign = "-" if x < 0 else ""
    d = Decimal(repr(abs(x)))
    _, digit_tuple, exp = d.as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    # repr may carry trailing zeros ("100.0"): normalise to shortest digits.
    stripped = len("".join(map(str, digit_tuple))) - len(digits)
    exp += stripped
    n = len(digits)
    e = exp + n - 1  # scientific exponent
    if -5 <= e <= 15:
        if n - 1 <= e:
            body = digits + "0" * (e - (n - 1)) + ".0"
        elif e >= 0:
            body = digits[: e + 1] + "." + digits[e + 1 :]
        else:
            body = "0." + "0" * (-e - 1) + digits
    else:
        body = digits[0] + ("." + digits[1:] if n > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + body


def stringify(v):
    """``v`` printed as serde_json's ``Value::to_string()`` prints it."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        if -I64_MAX_PLUS_1 <= v <= U64_MAX:
            return str(v)
        return format_float(float(v))
    if isinstance(v, float):
        return format_float(v)
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, list):
        return "[" + ",".join(stringify(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(quote(k) + ":" + stringify(v[k]) for k in sorted(v)) + "}"
    raise TypeError("not a JSON value: %r" % (v,))


def json_kind(v):
    """A short English name of a JSON value's kind, for error messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"
