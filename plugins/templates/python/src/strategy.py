"""A minimal batchllm strategy plugin in Python: one OpenAI-compatible chat
completion per attempt. Built into a WebAssembly component by componentize-py
(./build.sh), which embeds a Python interpreter: the component needs no Python
at run time.

Copy this folder, then edit:

- ``parse_config`` for your settings (here ``base_url`` and ``model``);
- ``request_body`` and ``send_request`` for your provider's request;
- the API the host's classifier reads your provider's answers as
  (``classify.Api.OPENAI_CHAT``, ``ANTHROPIC_MESSAGES``, ``GEMINI_GENERATE_CONTENT``,
  ..., or ``GENERIC`` for any JSON API), or your own reading of them.

What the host guarantees, and what a strategy must never do, is in
docs/writing-a-plugin.md of the batchllm-host repository. In short: the host
owns every policy (retries, backoff, cooldowns, deadlines, accounting). A
strategy translates one job into one provider request, translates the answer,
and classifies failures honestly. It never retries, never sleeps and keeps no
per-item facts in module globals.

Types, as componentize-py maps the WIT (wit/strategy.wit): records are
dataclasses in ``wit_world.imports.types`` with snake_case fields (the
``class`` field of a strategy-error is ``class_``), an ``option`` is ``None``
for none, and a ``result`` error is returned by raising
``componentize_py_types.Err(value)``. Any other exception escaping a call
makes it trap: the host records ``plugin_trap`` and discards the instance. So
every expected failure below is a classified error.

Import every module here, at top level: componentize-py snapshots the
interpreter at build time, and an import inside a function fails at run time.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import classify, host, http, types

# Where requests go unless the configuration says otherwise.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The model used when neither the job nor the configuration names one.
DEFAULT_MODEL = "gpt-4o-mini"
# The host's name for the key given with `--api-key-env VAR` (or
# `--secret api-key=env:VAR`). The plugin never sees the key: it writes
# `{{secret:api-key}}` into a header and the host substitutes it, only for
# hosts the secret is granted for.
API_KEY_SECRET = "api-key"
# Longest provider message quoted in an error, in characters.

E = types.ErrorClass


class LlmStrategy(exports.LlmStrategy):
    """The ``llm-strategy`` export (componentize-py finds it by this name)."""

    def prepare(self, config):
        """Runs once per run, before any ``execute``, in one instance.

        Check the configuration here: an error stops the run before any item
        is sent. Run-wide set-up (a provider-side cache, a resolved model)
        would be recorded with ``host.run_state_set`` so every instance can
        read it.
        """
        parsed = parse_config(config)
        host.log(host.LogLevel.INFO, "template strategy: base_url=%s model=%s" % (parsed["base_url"], parsed["model"]))

    def execute(self, item, attempt, state):
        """Runs for each attempt of each item, in any instance: exactly one
        provider request, never a retry, never a sleep. The host decides
        whether there is another attempt, from the class of the error."""
        # `prepare` ran in another instance; every instance reads the same
        # configuration from the host. Parsing it is cheap next to the call.
        config = parse_config(host.config())
        body = request_body(config, item)
        response = send_request(config, body, attempt)
        # The host reads the answer, with the code its own plugins use: the
        # output (the first choice's text), usage, metadata; or the failure's
        # class (the status, the provider's error code, an answer with no
        # content), message, wait and billed tokens, raised as an Err.
        # Classify honestly if you read answers yourself: the host's retry
        # policy is keyed on the class.
        return classify.classify(classify.Api.OPENAI_CHAT, response.status, response.headers, response.body)

    def on_error(self, item, error, attempt, state):
        """Runs after a failed ``execute`` that the host will try again,
        before the next attempt.

        It returns changes to the item's retry state (``(key, value)`` sets,
        ``(key, None)`` removes), which the next ``execute`` receives as
        ``state``. This strategy does not adapt, so it changes nothing. (An
        adapting one might raise the temperature after an
        ``invalid-response``, or switch to a bigger model.)
        """
        return []

    def cleanup(self):
        """Runs once at the end of the run when ``prepare`` succeeded (after
        success, failure, abort or Ctrl-C). Nothing was set up, so nothing to
        tear down. ``raise Err("reason")`` here is only logged."""
        return None


def failure(class_, message, http_status=None, retry_after_ms=None, usage=None, response_body=None):
    """A strategy-error, ready to ``raise``."""
    return Err(types.StrategyError(class_, message, http_status, retry_after_ms, usage, response_body))


def parse_config(text):
    """Parses the plugin's settings (a JSON object from ``--plugin-config
    KEY=VALUE`` and the ``[plugin-config]`` table of the config file).

    Unknown keys are refused so that a misspelt setting is an error instead
    of being silently ignored.
    """

    def invalid(why):
        return failure(E.CLIENT_ERROR, "invalid plugin configuration: " + why)

    config = None
    if text.strip():
        try:
            config = json.loads(text)
        except ValueError as e:
            raise invalid("not valid JSON: %s" % e) from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise invalid("expected a JSON object, got %s" % json.dumps(config))
    for key in config:
        if key not in ("base_url", "model"):
            raise invalid("unknown key %s (known keys: base_url, model)" % json.dumps(key))

    def setting(key, default):
        value = config.get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise invalid("%s must be a non-empty string, got %s" % (key, json.dumps(value)))

    base_url = setting("base_url", DEFAULT_BASE_URL)
    if not base_url.startswith(("http://", "https://")):
        raise invalid("base_url must start with http:// or https://, got %s" % json.dumps(base_url))
    return {"base_url": base_url.rstrip("/"), "model": setting("model", DEFAULT_MODEL)}


def request_body(config, item):
    """The chat-completions request body for ``item``.

    Both input shapes work: a simple line gives a ``prompt`` (and maybe
    ``params`` such as ``temperature``); an OpenAI Batch line gives the whole
    request body in ``params`` (with ``messages``) and an empty prompt. The
    job's ``params`` win over the configuration; the prompt is appended as
    the last user message.
    """
    if item.endpoint is not None and not item.endpoint.endswith("/chat/completions"):
        raise failure(E.CLIENT_ERROR, "this plugin only serves /v1/chat/completions, not %s" % item.endpoint)
    try:
        body = json.loads(item.params)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise failure(E.CLIENT_ERROR, "the job's params must be a JSON object")
    # One request, one whole answer: streaming is not supported.
    if body.get("stream") is True:
        raise failure(E.CLIENT_ERROR, '"stream": true is not supported')
    body.setdefault("model", config["model"])
    if item.prompt:
        messages = body.setdefault("messages", [])
        if not isinstance(messages, list):
            raise failure(E.CLIENT_ERROR, "the job's params.messages must be an array")
        messages.append({"role": "user", "content": item.prompt})
    if "messages" not in body:
        raise failure(E.CLIENT_ERROR, "the job has neither a prompt nor params.messages")
    return body


# What each `http-error` case of the `http.send` import means.
_HTTP_ERRORS = {
    # Refused by the egress policy (host not granted, or a secret not allowed
    # for it); the host records it as `egress_denied`.
    http.HttpError_Denied: (E.CLIENT_ERROR, "egress denied"),
    http.HttpError_Timeout: (E.TIMEOUT, "request timed out"),
    http.HttpError_Network: (E.NETWORK, "network error"),
    http.HttpError_InvalidRequest: (E.CLIENT_ERROR, "invalid request"),
    http.HttpError_TooLarge: (E.TOO_LARGE, "body too large"),
}


def send_request(config, body, attempt):
    """Sends the one request of this attempt through the host's ``http.send``.

    The host checks the destination against the hosts granted with
    ``--allow-host``, substitutes the ``{{secret:...}}`` placeholder, and sees
    every status and rate-limit header. The attempt's time left is passed on
    as the HTTP timeout, so a hung provider ends as a ``timeout`` in time.
    """
    request = http.Request(
        "POST",
        config["base_url"] + "/chat/completions",
        [
            ("content-type", "application/json"),
            ("authorization", "Bearer {{secret:%s}}" % API_KEY_SECRET),
        ],
        json.dumps(body).encode("utf-8"),
        attempt.time_left_ms,
    )
    try:
        return http.send(request)
    except Err as e:
        class_, what = _HTTP_ERRORS.get(type(e.value), (E.OTHER, "http error"))
        raise failure(class_, "%s: %s" % (what, getattr(e.value, "value", e.value))) from None
