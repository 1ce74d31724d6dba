"""The OpenAI strategy's logic, a line-by-line port of the Rust plugin
(plugins/openai-core/src/{config,request,response}.rs) and of the parts of the
Rust SDK it uses (plugins/sdk: classification, usage, text helpers).

Plain Python with no import of the generated bindings, so the unit tests run
natively (``python3 -m unittest discover -s tests``); ``strategy.py`` adapts
it to the component's types.
"""

import re

from serdejson import JsonSyntaxError, json_kind, parse_json, stringify

# ---------------------------------------------------------------- text

# Rust's `char::is_whitespace` (Unicode White_Space).
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def trim(s):
    """Rust's ``str::trim``."""
    return s.strip(_WS)


def trim_start(s):
    return s.lstrip(_WS)


def ascii_lower(s):
    """Rust's ``to_ascii_lowercase``."""
    return re.sub("[A-Z]+", lambda m: m.group(0).lower(), s)


def truncate(text, max_bytes):
    """The longest prefix of ``text`` of at most ``max_bytes`` UTF-8 bytes."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    end = max_bytes
    while end > 0 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return data[:end].decode("utf-8", "surrogatepass")


def excerpt(text, max_bytes):
    cut = truncate(text, max_bytes)
    return cut if len(cut) == len(text) else cut + "\u2026"


def body_text(body):
    """``body`` decoded as UTF-8, invalid sequences replaced (Rust's from_utf8_lossy)."""
    return body if isinstance(body, str) else bytes(body).decode("utf-8", "replace")


def header(headers, name):
    lower = ascii_lower(name)
    for k, v in headers:
        if ascii_lower(k) == lower:
            return v
    return None


def debug_str(s):
    """Rust's ``{:?}`` of a string."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif c < 0x20 or c == 0x7F:
            out.append("\\u{%x}" % c)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _get(value, key):
    """serde_json's ``Value::get``: a key of an object or an index of an array."""
    if isinstance(key, int):
        return value[key] if isinstance(value, list) and 0 <= key < len(value) else None
    if isinstance(value, dict):
        return value.get(key, _ABSENT)
    return _ABSENT


class _Absent:
    def __repr__(self):
        return "<absent>"


_ABSENT = _Absent()


def get(value, key):
    """Like ``Value::get``, with an absent key as ``None`` (use ``has`` to tell a null apart)."""
    v = _get(value, key)
    return None if v is _ABSENT else v


def has(value, key):
    return isinstance(value, dict) and key in value


def is_object(v):
    return isinstance(v, dict)


# ---------------------------------------------------------------- errors


class StrategyFailure(Exception):
    """A classified failure: the WIT ``strategy-error`` record, classes in kebab-case."""

    def __init__(self, class_, message, http_status=None, retry_after_ms=None, usage=None, response_body=None):
        super().__init__(message)
        self.class_ = class_
        self.message = message
        self.http_status = http_status
        self.retry_after_ms = retry_after_ms
        self.usage = usage
        self.response_body = response_body

    def fields(self):
        return {
            "class": self.class_,
            "message": self.message,
            "http_status": self.http_status,
            "retry_after_ms": self.retry_after_ms,
            "usage": self.usage,
            "response_body": self.response_body,
        }


MAX_MESSAGE_BYTES = 1024
MAX_EXCERPT_BYTES = 2048


def class_for_status(status):
    if status == 429:
        return "rate-limited"
    if status in (401, 403):
        return "auth"
    if status == 413:
        return "too-large"
    if status in (400, 404, 405, 410, 422):
        return "client-error"
    if status == 408:
        return "timeout"
    if status == 409 or 500 <= status <= 599:
        return "overloaded"
    return "other"


REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}


def _try_parse(text):
    try:
        return True, parse_json(text)
    except JsonSyntaxError:
        return False, None


def from_http(status, headers, body):
    """The SDK's ``classify::from_http``."""
    is_json, value = _try_parse(body)
    reason = REASONS.get(status, "")
    head = "HTTP %d %s" % (status, reason) if reason else "HTTP %d" % status
    m = provider_message(is_json, value, body)
    err = StrategyFailure(class_for_status(status), head if m is None else "%s: %s" % (head, m), http_status=status)
    wait = None
    ms = header(headers, "retry-after-ms")
    if ms is not None:
        wait = parse_retry_after_ms_header(ms)
    if wait is None:
        secs = header(headers, "retry-after")
        if secs is not None:
            wait = parse_retry_after_header(secs)
    if wait is None and is_json:
        wait = _retry_info_delay_ms(value)
    if wait is None and status == 429:
        wait = parse_try_again_in(body)
    err.retry_after_ms = wait
    if is_json:
        err.response_body = body
    return err


def provider_message(is_json, value, body):
    """The SDK's ``classify::provider_message``."""
    if is_json:
        error = _get(value, "error")
        candidates = [_get(error, "message"), error, _get(value, "message"), _get(value, "detail")]
        for c in candidates:
            if isinstance(c, str) and trim(c) != "":
                return excerpt(trim(c), MAX_MESSAGE_BYTES)
            if isinstance(c, list):
                return excerpt(stringify(c), MAX_MESSAGE_BYTES)
    t = trim(body)
    return None if t == "" else excerpt(t, MAX_MESSAGE_BYTES)


HTTP_ERRORS = {
    "Denied": ("client-error", "egress denied"),
    "Timeout": ("timeout", "request timed out"),
    "Network": ("network", "network error"),
    "InvalidRequest": ("client-error", "invalid request"),
    "TooLarge": ("too-large", "body too large"),
}


def from_http_error(kind, message):
    """The SDK's ``classify::from_http_error``; ``kind`` is the variant's name."""
    class_, prefix = HTTP_ERRORS.get(kind, ("other", "http error"))
    return StrategyFailure(class_, "%s: %s" % (prefix, message))


# ---------------------------------------------------------------- durations

_U128_MAX = (1 << 128) - 1
_U64_MAX = (1 << 64) - 1
_DIGITS = re.compile("[0-9]*")


def _decimal_to_ns(number, factor):
    int_part, _, frac = number.partition(".")
    if int_part == "" and frac == "":
        return None
    if not re.fullmatch("[0-9]*", int_part) or not re.fullmatch("[0-9]*", frac):
        return None
    frac = frac[:18]
    scale = 10 ** len(frac)
    int_value = int(int_part) if int_part else 0
    mantissa = int_value * scale + (int(frac) if frac else 0)
    total = mantissa * factor
    if int_value > _U128_MAX or mantissa > _U128_MAX or total > _U128_MAX:
        return None
    return -(-total // scale)


def _ns_to_ms(ns):
    return min(-(-ns // 1000000), _U64_MAX)


def parse_retry_after_ms_header(value):
    ns = _decimal_to_ns(trim(value), 1000000)
    return None if ns is None else _ns_to_ms(ns)


def parse_retry_after_header(value):
    ns = _decimal_to_ns(trim(value), 1000000000)
    return None if ns is None else _ns_to_ms(ns)


_UNITS = [
    (("ns",), 1),
    (("us", "\u00b5s", "\u03bcs"), 1000),
    (("ms", "msec", "msecs", "millisecond", "milliseconds"), 1000000),
    (("s", "sec", "secs", "second", "seconds"), 1000000000),
    (("m", "min", "mins", "minute", "minutes"), 60000000000),
    (("h", "hr", "hrs", "hour", "hours"), 3600000000000),
]


def _unit_ns(unit):
    lower = ascii_lower(unit)
    for names, ns in _UNITS:
        if lower in names:
            return ns
    return None


def parse_duration_ms(text):
    """The SDK's ``classify::parse_duration_ms``."""
    rest = trim_start(text)
    total = 0
    parsed_any = False
    while True:
        num_len = len(re.match("[0-9.]*", rest).group(0))
        if num_len == 0:
            break
        number = rest[:num_len]
        unit_start = rest[num_len:].lstrip(" ")
        unit_len = 0
        while unit_len < len(unit_start) and unit_start[unit_len].isalpha():
            unit_len += 1
        factor = _unit_ns(unit_start[:unit_len])
        if factor is None:
            break
        ns = _decimal_to_ns(number, factor)
        if ns is None:
            break
        total += ns
        parsed_any = True
        rest = unit_start[unit_len:]
        if not (rest[:1].isascii() and rest[:1].isdigit()):
            break
    return _ns_to_ms(total) if parsed_any else None


def parse_try_again_in(text):
    """The SDK's ``classify::parse_try_again_in``."""
    lower = ascii_lower(text)
    for needle in ("try again in ", "retry in ", "retry after "):
        start_from = 0
        while True:
            pos = lower.find(needle, start_from)
            if pos < 0:
                break
            start = pos + len(needle)
            ms = parse_duration_ms(text[start:])
            if ms is not None:
                return ms
            start_from = start
    return None


def _retry_info_delay_ms(value):
    details = get(get(value, "error"), "details")
    if not isinstance(details, list):
        return None
    for d in details:
        delay = get(d, "retryDelay")
        if isinstance(delay, str):
            ms = parse_duration_ms(delay)
            if ms is not None:
                return ms
    return None


# ---------------------------------------------------------------- usage


def _as_count(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if 0 <= v <= _U64_MAX else None if v >= 0 else None
    if isinstance(v, float):
        if v == v and v not in (float("inf"), float("-inf")) and v >= 0 and v == int(v) and v < 1e18:
            return int(v)
    return None


def usage_from_openai(value):
    """The SDK's ``usage::from_openai``: a dict of the five WIT fields, or None."""
    inner = _get(value, "usage")
    usage = inner if isinstance(inner, dict) else value
    if not isinstance(usage, dict):
        return None

    def num(v):
        return None if v is _ABSENT else _as_count(v)

    def first(a, b):
        return a if a is not None else b

    inp = first(num(_get(usage, "prompt_tokens")), num(_get(usage, "input_tokens")))
    out = first(num(_get(usage, "completion_tokens")), num(_get(usage, "output_tokens")))
    if inp is None and out is None:
        return None

    def or_present(a, b):  # Option::or: a present null counts as present
        return a if a is not _ABSENT else b

    prompt_details = or_present(_get(usage, "prompt_tokens_details"), _get(usage, "input_tokens_details"))
    completion_details = or_present(_get(usage, "completion_tokens_details"), _get(usage, "output_tokens_details"))

    def detail(d, key):
        return None if d is _ABSENT else num(_get(d, key))

    return {
        "input_tokens": inp if inp is not None else 0,
        "output_tokens": out if out is not None else 0,
        "cached_input_tokens": detail(prompt_details, "cached_tokens"),
        "cache_write_tokens": first(num(_get(usage, "cache_write_tokens")), detail(prompt_details, "cache_write_tokens")),
        "reasoning_tokens": detail(completion_details, "reasoning_tokens"),
    }


# ---------------------------------------------------------------- config

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_API_KEY_SECRET = "api-key"
KNOWN_KEYS = ["base_url", "model", "api_key_secret", "default_params", "extra_headers"]
_RUST_WS = re.compile("[" + re.escape(_WS) + "]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")


def _invalid(message):
    return StrategyFailure("client-error", "invalid openai plugin configuration: " + message)


class Config:
    def __init__(self):
        self.base_url = DEFAULT_BASE_URL
        self.base_has_path = True
        self.model = DEFAULT_MODEL
        self.api_key_secret = DEFAULT_API_KEY_SECRET
        self.default_params = {}
        self.extra_headers = []


def parse_config(text):
    """The SDK's ``parse_config`` then the plugin's validation."""
    if trim(text) == "":
        return config_from_value({})
    try:
        value = parse_json(text)
    except JsonSyntaxError as e:
        raise StrategyFailure("client-error", "plugin configuration is not valid JSON: %s" % e) from None
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise StrategyFailure("client-error", "plugin configuration must be a JSON object, got %s" % json_kind(value))
    return config_from_value(value)


def config_from_value(obj):
    if not isinstance(obj, dict):
        raise _invalid("expected a JSON object, got %s" % json_kind(obj))
    for key in sorted(obj):
        if key not in KNOWN_KEYS:
            raise _invalid("unknown key %s (known keys: %s)" % (debug_str(key), ", ".join(KNOWN_KEYS)))
    config = Config()

    def present(k):
        return k in obj and obj[k] is not None

    if present("base_url"):
        v = obj["base_url"]
        if not isinstance(v, str):
            raise _invalid("base_url must be a string, got %s" % json_kind(v))
        r = validate_base_url(v)
        if isinstance(r, str):
            raise _invalid(r)
        config.base_url, config.base_has_path = r
    if present("model"):
        m = obj["model"]
        if not isinstance(m, str) or trim(m) == "":
            raise _invalid("model must be a non-empty string")
        config.model = m
    if "api_key_secret" in obj:
        v = obj["api_key_secret"]
        if v is None or v == "":
            config.api_key_secret = None
        elif isinstance(v, str):
            if "{" in v or "}" in v or _RUST_WS.search(v):
                raise _invalid("api_key_secret %s must not contain whitespace or braces" % debug_str(v))
            config.api_key_secret = v
        else:
            raise _invalid("api_key_secret must be a string or null, got %s" % json_kind(v))
    if present("default_params"):
        v = obj["default_params"]
        if not isinstance(v, dict):
            raise _invalid("default_params must be an object, got %s" % json_kind(v))
        config.default_params = dict(v)
    if present("extra_headers"):
        v = obj["extra_headers"]
        if not isinstance(v, dict):
            raise _invalid("extra_headers must be an object, got %s" % json_kind(v))
        for name in sorted(v):
            value = v[name]
            if not _HEADER_NAME.fullmatch(name):
                raise _invalid("extra_headers: %s is not a valid header name" % debug_str(name))
            if not isinstance(value, str):
                raise _invalid("extra_headers.%s must be a string, got %s" % (name, json_kind(value)))
            if "\r" in value or "\n" in value:
                raise _invalid("extra_headers.%s must not contain line breaks" % name)
            config.extra_headers.append((name, value))
    return config


def validate_base_url(url):
    """``(url without trailing slashes, has a path)``, or an error message."""
    if url.startswith("https://"):
        rest = url[8:]
    elif url.startswith("http://"):
        rest = url[7:]
    else:
        return "base_url %s must be an absolute http:// or https:// URL" % debug_str(url)
    if _RUST_WS.search(url) or _CONTROL.search(url):
        return "base_url %s must not contain whitespace" % debug_str(url)
    if "?" in url or "#" in url:
        return "base_url %s must not have a query or fragment" % debug_str(url)
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    host = authority.rsplit("@", 1)[-1]
    if host == "" or host.startswith(":"):
        return "base_url %s has no host" % debug_str(url)
    return url.rstrip("/"), path.strip("/") != ""


# ---------------------------------------------------------------- request

PARAM_OVERRIDE_PREFIX = "param."
CHAT = "chat"
EMBEDDINGS = "embeddings"


def resolve_endpoint(endpoint):
    if endpoint is None:
        return CHAT
    path = trim(endpoint).rstrip("/")
    if path.startswith("/"):
        path = path[1:]
    if path.startswith("v1/"):
        path = path[3:]
    if path in ("", "chat/completions"):
        return CHAT
    if path == "embeddings":
        return EMBEDDINGS
    raise StrategyFailure(
        "client-error",
        "unsupported endpoint %s: the openai strategy supports /v1/chat/completions and /v1/embeddings"
        % debug_str(endpoint),
    )


def join_url(config, endpoint):
    path = "/v1/chat/completions" if endpoint == CHAT else "/v1/embeddings"
    return config.base_url + (path[3:] if config.base_has_path else path)


def params_object(item_id, params):
    """The SDK's ``Item::params_object``."""
    if trim(params) == "":
        return {}
    try:
        value = parse_json(params)
    except JsonSyntaxError as e:
        raise StrategyFailure("client-error", "item %s: params is not valid JSON: %s" % (debug_str(item_id), e)) from None
    if isinstance(value, dict):
        return value
    raise StrategyFailure(
        "client-error", "item %s: params must be a JSON object, got %s" % (debug_str(item_id), json_kind(value))
    )


def build_body(config, item_id, prompt, params, endpoint, state):
    body = dict(config.default_params)
    body.update(params_object(item_id, params))
    if body.get("model") is None:
        body["model"] = config.model
    if endpoint == CHAT:
        messages = body.get("messages")
        if messages is None:
            if prompt == "":
                raise StrategyFailure(
                    "client-error", "item %s has neither a prompt nor params.messages" % debug_str(item_id)
                )
            body["messages"] = [{"role": "user", "content": prompt}]
        elif isinstance(messages, list):
            if prompt != "":
                body["messages"] = messages + [{"role": "user", "content": prompt}]
        else:
            raise StrategyFailure(
                "client-error",
                "item %s: params.messages must be an array, got %s" % (debug_str(item_id), json_kind(messages)),
            )
    else:
        if body.get("input") is None:
            if prompt == "":
                raise StrategyFailure("client-error", "item %s has neither a prompt nor params.input" % debug_str(item_id))
            body["input"] = prompt
    apply_overrides(body, state)
    if body.get("stream") is True:
        raise StrategyFailure(
            "client-error",
            "item %s: streaming (stream: true) is not supported; the strategy needs the whole response"
            % debug_str(item_id),
        )
    return body


def apply_overrides(body, state):
    for key, value in state:
        if not key.startswith(PARAM_OVERRIDE_PREFIX):
            continue
        field = key[len(PARAM_OVERRIDE_PREFIX) :]
        if field == "":
            continue
        try:
            parsed = parse_json(value)
        except JsonSyntaxError:
            parsed = value
        body[field] = parsed


def request_headers(config):
    out = [("content-type", "application/json")]
    if config.api_key_secret is not None:
        out.append(("authorization", "Bearer {{secret:%s}}" % config.api_key_secret))
    for name, value in config.extra_headers:
        out = [(n, v) for n, v in out if ascii_lower(n) != ascii_lower(name)]
        out.append((name, value))
    return out


def build_request(config, item_id, prompt, params, endpoint, state):
    """``(endpoint, method, url, headers, body bytes)`` for one attempt."""
    resolved = resolve_endpoint(endpoint)
    body = build_body(config, item_id, prompt, params, resolved, state)
    return resolved, "POST", join_url(config, resolved), request_headers(config), stringify(body).encode("utf-8")


# ---------------------------------------------------------------- response


def interpret(endpoint, status, headers, body):
    """A success dict ``{output, usage, response_body, metadata}``; raises StrategyFailure."""
    if 200 <= status < 300:
        return parse_success(endpoint, status, headers, body)
    raise classify_error(status, headers, body)


def classify_error(status, headers, body):
    text = body_text(body)
    is_json, value = _try_parse(text)
    return refine(from_http(status, headers, text), status, value if is_json else _ABSENT)


def refine(err, status, value):
    nested = _get(value, "error") if value is not _ABSENT else _ABSENT
    error = nested if isinstance(nested, dict) else None

    def field(name):
        if error is not None:
            v = _get(error, name)
        elif value is not _ABSENT:
            v = _get(value, name)
        else:
            v = None
        return v if isinstance(v, str) else ""

    code, kind, message = field("code"), field("type"), field("message")

    def is_(s):
        return code == s or kind == s

    over_tpm = status == 429 and trim_start(message).startswith("Request too large")
    over_context = status == 400 and (
        is_("context_length_exceeded")
        or is_("exceed_context_size_error")
        or "maximum context length" in ascii_lower(message)
    )
    class_ = None
    if is_("insufficient_quota") or is_("billing_hard_limit_reached") or status == 402:
        class_ = "quota-exhausted"
    elif is_("invalid_api_key"):
        class_ = "auth"
    elif over_tpm or over_context:
        class_ = "too-large"
    if class_ is not None:
        err.class_ = class_
        if class_ != "rate-limited":
            err.retry_after_ms = None
    return err


def parse_success(endpoint, status, headers, body):
    text = body_text(body)
    try:
        value = parse_json(text)
    except JsonSyntaxError as e:
        shown = "the body is empty" if trim(text) == "" else "body: " + excerpt(text, MAX_EXCERPT_BYTES)
        raise StrategyFailure(
            "invalid-response", "HTTP %d response is not valid JSON (%s); %s" % (status, e, shown), http_status=status
        ) from None

    def invalid(message):
        return StrategyFailure(
            "invalid-response", message, http_status=status, response_body=text, usage=usage_from_openai(value)
        )

    if not isinstance(value, dict):
        raise invalid("HTTP %d response is %s, expected an object" % (status, json_kind(value)))
    payload_key = "choices" if endpoint == CHAT else "data"
    if payload_key not in value:
        error = value.get("error")
        if error is not None:
            raise _embedded_error(status, headers, text, value, error)
    metadata = {}
    for key in ("model", "id"):
        if value.get(key) is not None:
            metadata[key] = value[key]
    if endpoint == CHAT:
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices:
            raise invalid("response has no choices")
        first = choices[0]
        reason = get(first, "finish_reason")
        if reason is not None:
            metadata["finish_reason"] = reason
        message = get(first, "message")
        if not isinstance(message, dict):
            raise invalid("choices[0] has no message")
        output, error_message = _chat_output(message)
        if error_message is not None:
            raise invalid(error_message)
    else:
        data = value.get("data")
        if not isinstance(data, list):
            raise invalid("response has no data array")
        output = stringify(data)
    return {
        "output": output,
        "usage": usage_from_openai(value),
        "response_body": text,
        "metadata": stringify(metadata),
    }


def _chat_output(message):
    content = message.get("content")
    if isinstance(content, str):
        return content, None
    if isinstance(content, list):
        parts = []
        for p in content:
            t = get(p, "text")
            if isinstance(t, str):
                parts.append(t)
            elif isinstance(p, str):
                parts.append(p)
        return "".join(parts), None

    def has_calls(key):
        v = message.get(key)
        return len(v) > 0 if isinstance(v, list) else isinstance(v, dict)

    if has_calls("tool_calls") or has_calls("function_call"):
        return stringify(message), None
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        return None, "the model refused: " + excerpt(refusal, MAX_MESSAGE_BYTES)
    return None, "choices[0].message has no content and no tool calls"


def _embedded_error(status, headers, text, value, error):
    raw = get(error, "code")
    code = None
    if isinstance(raw, int) and not isinstance(raw, bool) and 400 <= raw < 600:
        code = raw
    if code is not None:
        base = refine(from_http(code, headers, text), code, value)
    else:
        base = refine(StrategyFailure("other", ""), status, value)
    message = provider_message(True, value, text) or ""
    base.message = "HTTP %d response carries an error: %s" % (status, message)
    base.http_status = status
    base.response_body = text
    return base
