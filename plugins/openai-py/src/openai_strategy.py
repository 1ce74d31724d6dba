"""The OpenAI strategy's logic, a port of the Rust plugin's configuration and
request building (plugins/openai-core/src/{config,request}.rs). Answers are
read by the host's classifier (the ``classify`` import, in strategy.py): the
code the Rust plugin runs, so outputs, usage and classes are the same.

Plain Python with no import of the generated bindings, so the unit tests run
natively (``python3 -m unittest discover -s tests``); ``strategy.py`` adapts
it to the component's types.
"""

import json
import re

# ---------------------------------------------------------------- JSON

JsonSyntaxError = json.JSONDecodeError


def parse_json(text):
    """JSON text to Python values; integers keep every digit, as in serde_json."""
    return json.loads(text)


def stringify(value):
    """Compact JSON, non-ASCII characters as they are."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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


# ---------------------------------------------------------------- text

# Rust's `char::is_whitespace` (Unicode White_Space).
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def trim(s):
    """Rust's ``str::trim``."""
    return s.strip(_WS)


def ascii_lower(s):
    """Rust's ``to_ascii_lowercase``."""
    return re.sub("[A-Z]+", lambda m: m.group(0).lower(), s)


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
# The host classifier's name of each endpoint's answers (WIT classify.api).
API = {CHAT: "openai-chat", EMBEDDINGS: "openai-embeddings"}


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
