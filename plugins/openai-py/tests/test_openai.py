"""Unit tests of the plugin's logic, run natively:
``python3 -m unittest discover -s plugins/openai-py/tests``. Answers are read
by the host's classifier (tested with it, in plugins/classify);
tests/e2e/conformance.rs compares the built component with the Rust plugin."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import openai_strategy as core  # noqa: E402


def fails(f, *args):
    try:
        f(*args)
    except core.StrategyFailure as e:
        return e
    raise AssertionError("expected a failure")


class Json(unittest.TestCase):
    def test_large_integers_and_text_keep_every_digit(self):
        doc = '{"b":1,"a":[1.0,"\u00e9",12345678901234567890]}'
        self.assertEqual(core.parse_json(doc), {"a": [1.0, "\u00e9", 12345678901234567890], "b": 1})
        self.assertEqual(core.stringify({"seed": 12345678901234567, "t": "\u00e9"}), '{"seed":12345678901234567,"t":"\u00e9"}')


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
            json.loads(body),
            {
                "max_tokens": 10,
                "messages": [{"content": "Hi", "role": "user"}],
                "model": "gpt-4o-mini",
                "seed": 7,
                "stop": "not json",
                "temperature": 0.9,
            },
        )
        self.assertEqual(headers, [("content-type", "application/json"), ("authorization", "Bearer {{secret:api-key}}")])
        e = fails(core.build_request, c, "job-1", "Hi", "{}", "/v1/responses", [])
        self.assertIn('unsupported endpoint "/v1/responses"', e.message)
        self.assertEqual(fails(core.build_request, c, "job-1", "", "{}", None, []).class_, "client-error")


class Transport(unittest.TestCase):
    def test_http_errors(self):
        e = core.from_http_error("Timeout", "slow")
        self.assertEqual((e.class_, e.message), ("timeout", "request timed out: slow"))
        self.assertEqual(core.from_http_error("Denied", "no").class_, "client-error")
        self.assertEqual(core.API[core.CHAT], "openai-chat")


if __name__ == "__main__":
    unittest.main()
