"""Unit tests of the plugin's logic, run natively:
``python3 -m unittest discover -s plugins/openai-py/tests``. Ported from the
Rust plugin's and SDK's tests; tests/e2e/conformance.rs compares the built
component with the Rust plugin."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import openai_strategy as core  # noqa: E402
from serdejson import JsonSyntaxError, parse_json, stringify  # noqa: E402


def fails(f, *args):
    try:
        f(*args)
    except (core.StrategyFailure, JsonSyntaxError) as e:
        return e
    raise AssertionError("expected a failure")


class Json(unittest.TestCase):
    def test_serde_compatible(self):
        doc = '{"b":1,"a":[1.0,0.1,1e-7,-0,12345678901234567890,123456789012345678901]}'
        self.assertEqual(
            stringify(parse_json(doc)),
            '{"a":[1.0,0.1,1e-7,-0.0,12345678901234567890,1.2345678901234567e+20],"b":1}',
        )
        self.assertEqual(stringify(parse_json("0.48190581798553467")), "0.4819058179855346")
        self.assertEqual(stringify(parse_json('"\\u00e9\\n\\u001f"')), '"\u00e9\\n\\u001f"')
        self.assertEqual(str(fails(parse_json, '{"a":')), "EOF while parsing a value at line 1 column 5")
        self.assertEqual(str(fails(parse_json, "NaN")), "expected value at line 1 column 1")
        self.assertEqual(str(fails(parse_json, '"\\udc00"')), "lone leading surrogate in hex escape at line 1 column 7")
        self.assertEqual(str(fails(parse_json, "[" * 130)), "recursion limit exceeded at line 1 column 128")


class Config(unittest.TestCase):
    def test_defaults_and_errors(self):
        c = core.parse_config("")
        self.assertEqual((c.base_url, c.model, c.api_key_secret), ("https://api.openai.com/v1", "gpt-4o-mini", "api-key"))
        e = fails(core.parse_config, '{"base_ulr": "http://x"}')
        self.assertEqual(e.class_, "client-error")
        self.assertEqual(
            e.message,
            'invalid openai plugin configuration: unknown key "base_ulr" '
            "(known keys: base_url, model, api_key_secret, default_params, extra_headers)",
        )
        for bad in ['{"base_url":"ftp://h/v1"}', '{"model":""}', '{"api_key_secret":"a}}b"}', '{"extra_headers":{"x":1}}', "[]"]:
            self.assertEqual(fails(core.parse_config, bad).class_, "client-error", bad)
        self.assertEqual(core.parse_config('{"api_key_secret": null}').api_key_secret, None)
        self.assertEqual(core.join_url(core.parse_config('{"base_url":"http://h:1"}'), core.CHAT), "http://h:1/v1/chat/completions")


class Request(unittest.TestCase):
    def test_body_headers_and_overrides(self):
        c = core.parse_config('{"base_url":"http://127.0.0.1:9/v1","default_params":{"temperature":0.2,"max_tokens":10}}')
        endpoint, method, url, headers, body = core.build_request(
            c, "job-1", "Hi", '{"temperature":0.9}', None, [("param.seed", "7"), ("param.stop", "not json")]
        )
        self.assertEqual((endpoint, method, url), (core.CHAT, "POST", "http://127.0.0.1:9/v1/chat/completions"))
        self.assertEqual(
            body.decode(),
            '{"max_tokens":10,"messages":[{"content":"Hi","role":"user"}],"model":"gpt-4o-mini","seed":7,"stop":"not json","temperature":0.9}',
        )
        self.assertEqual(headers, [("content-type", "application/json"), ("authorization", "Bearer {{secret:api-key}}")])
        e = fails(core.build_request, c, "job-1", "Hi", "{}", "/v1/responses", [])
        self.assertIn('unsupported endpoint "/v1/responses"', e.message)
        self.assertEqual(fails(core.build_request, c, "job-1", "", "{}", None, []).class_, "client-error")


class Response(unittest.TestCase):
    def test_success_usage_and_errors(self):
        ok = b'{"id":"c1","model":"m","choices":[{"message":{"content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}'
        s = core.interpret(core.CHAT, 200, [], ok)
        self.assertEqual(s["output"], "Hello!")
        self.assertEqual(s["metadata"], '{"finish_reason":"stop","id":"c1","model":"m"}')
        self.assertEqual((s["usage"]["input_tokens"], s["usage"]["cached_input_tokens"]), (9, 4))
        e = fails(core.interpret, core.CHAT, 200, [], b'{"choices":[')
        self.assertEqual(e.class_, "invalid-response")
        self.assertEqual(
            e.message,
            'HTTP 200 response is not valid JSON (EOF while parsing a list at line 1 column 12); body: {"choices":[',
        )

        def err(status, code, message):
            body = json.dumps({"error": {"message": message, "type": code, "code": code}}).encode()
            return fails(core.interpret, core.CHAT, status, [], body)

        self.assertEqual(err(429, "insufficient_quota", "quota").class_, "quota-exhausted")
        self.assertEqual(err(429, "rate_limit_exceeded", "Request too large for gpt-4o").class_, "too-large")
        limited = err(429, "rate_limit_exceeded", "Please try again in 644ms.")
        self.assertEqual((limited.class_, limited.retry_after_ms), ("rate-limited", 644))
        self.assertEqual(err(400, "context_length_exceeded", "too long").class_, "too-large")
        self.assertEqual(err(401, "invalid_api_key", "nope").class_, "auth")
        self.assertEqual(fails(core.interpret, core.CHAT, 503, [], b"").message, "HTTP 503 Service Unavailable")
        self.assertEqual(core.from_http(503, [("Retry-After", "1.5")], "").retry_after_ms, 1500)

    def test_helpers(self):
        self.assertEqual(core.parse_try_again_in("please TRY AGAIN IN 1m30s"), 90000)
        self.assertEqual(core.parse_try_again_in("Please retry in 27.428353394s."), 27429)
        self.assertIsNone(core.parse_retry_after_header("Wed, 21 Oct 2015 07:28:00 GMT"))
        self.assertEqual(core.excerpt("h\u00e9llo", 2), "h\u2026")
        self.assertEqual(core.usage_from_openai(parse_json('{"usage":{"prompt_tokens":2.0}}'))["input_tokens"], 2)


if __name__ == "__main__":
    unittest.main()
