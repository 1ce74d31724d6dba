"""batchllm strategy plugin for OpenAI-compatible APIs, in Python.

The component's entry point (componentize-py): it exports the
``llm-strategy`` interface of wit/strategy.wit and behaves as the Rust
openai plugin (plugins/openai); requests are built in openai_strategy.py,
answers are read by the host's ``classify`` import (the Rust plugin's own
code). HTTP goes through the host's ``http.send`` import (the same egress
policy, secrets and limits as every plugin).

Every module is imported here, at top level: componentize-py snapshots the
interpreter at build time, and a lazy import fails at run time.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import classify, host, http, types

import openai_strategy as core

_APIS = {"openai-chat": classify.Api.OPENAI_CHAT, "openai-embeddings": classify.Api.OPENAI_EMBEDDINGS}

_CLASSES = {
    "rate-limited": types.ErrorClass.RATE_LIMITED,
    "overloaded": types.ErrorClass.OVERLOADED,
    "timeout": types.ErrorClass.TIMEOUT,
    "network": types.ErrorClass.NETWORK,
    "invalid-response": types.ErrorClass.INVALID_RESPONSE,
    "client-error": types.ErrorClass.CLIENT_ERROR,
    "auth": types.ErrorClass.AUTH,
    "quota-exhausted": types.ErrorClass.QUOTA_EXHAUSTED,
    "too-large": types.ErrorClass.TOO_LARGE,
    "other": types.ErrorClass.OTHER,
    "no-content": types.ErrorClass.NO_CONTENT,
}

_HTTP_ERRORS = {
    http.HttpError_Denied: "Denied",
    http.HttpError_Timeout: "Timeout",
    http.HttpError_Network: "Network",
    http.HttpError_InvalidRequest: "InvalidRequest",
    http.HttpError_TooLarge: "TooLarge",
}

# The configuration, parsed once per instance (the same for the whole run).
_CONFIG = None


def _err(failure):
    return Err(
        types.StrategyError(
            _CLASSES[failure.class_],
            failure.message,
            failure.http_status,
            failure.retry_after_ms,
            None,
            failure.response_body,
        )
    )


def _config():
    global _CONFIG
    if _CONFIG is None:
        try:
            _CONFIG = (True, core.parse_config(host.config()))
        except core.StrategyFailure as e:
            _CONFIG = (False, e)
    ok, value = _CONFIG
    if not ok:
        raise _err(value)
    return value


class LlmStrategy(exports.LlmStrategy):
    def prepare(self, config):
        global _CONFIG
        try:
            parsed = core.parse_config(config)
        except core.StrategyFailure as e:
            raise _err(e) from None
        authorization = "none" if parsed.api_key_secret is None else "secret " + core.debug_str(parsed.api_key_secret)
        host.log(
            host.LogLevel.INFO,
            "openai strategy: base_url=%s model=%s authorization=%s" % (parsed.base_url, parsed.model, authorization),
        )
        _CONFIG = (True, parsed)

    def execute(self, item, attempt, state):
        config = _config()
        try:
            endpoint, method, url, headers, body = core.build_request(
                config, item.id, item.prompt, item.params, item.endpoint, state
            )
            host.log(
                host.LogLevel.TRACE,
                "POST %s (attempt %d, timeout %d ms)" % (url, attempt.number, attempt.time_left_ms),
            )
            try:
                response = http.send(http.Request(method, url, headers, body, attempt.time_left_ms))
            except Err as e:
                raise core.from_http_error(_HTTP_ERRORS.get(type(e.value), "Other"), e.value.value) from None
        except core.StrategyFailure as e:
            raise _err(e) from None
        # The classified failure (an Err) is this call's own.
        return classify.classify(_APIS[core.API[endpoint]], response.status, response.headers, response.body)

    def on_error(self, item, error, attempt, state):
        return []

    def cleanup(self):
        return None
