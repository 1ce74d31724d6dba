// Unit tests of the plugin's logic, run natively: `npm test` or
// `node --test plugins/openai-js/test/`. Ported from the Rust plugin's and
// SDK's tests; the end-to-end conformance test (tests/e2e/conformance.rs)
// compares the built component with the Rust plugin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F64, parseJson, stringify } from '../src/json.js';
import { fromHttp, parseTryAgainIn, parseRetryAfterHeader, usageFromOpenai, excerpt } from '../src/sdk.js';
import { buildRequest, configFromValue, interpret, joinUrl, parseConfigText, CHAT, EMBEDDINGS } from '../src/openai.js';

const item = (prompt, params = '{}', endpoint = undefined) => ({ id: 'job-1', prompt, params, context: undefined, endpoint });
const caught = (f) => {
  try {
    f();
  } catch (e) {
    return e;
  }
  assert.fail('expected a throw');
};

test('JSON parses and prints as serde_json does', () => {
  assert.equal(stringify(parseJson('{"b":1,"a":[1.0,0.1,1e-7,-0,12345678901234567890]}')), '{"a":[1.0,0.1,1e-7,-0.0,12345678901234567890],"b":1}');
  assert.ok(parseJson('2.0') instanceof F64);
  assert.equal(stringify(parseJson('0.48190581798553467')), '0.4819058179855346'); // serde's own rounding
  assert.equal(stringify(parseJson('"\\u00e9\\n\\u001f"')), '"é\\n\\u001f"');
  assert.equal(caught(() => parseJson('{"a":')).message, 'EOF while parsing a value at line 1 column 5');
  assert.equal(caught(() => parseJson('<html>')).message, 'expected value at line 1 column 1');
  assert.equal(caught(() => parseJson('\n\n  {"é": [1, tx]}')).message, 'expected ident at line 3 column 15');
});

test('configuration defaults, errors and unknown keys', () => {
  const c = parseConfigText('');
  assert.equal(c.baseUrl, 'https://api.openai.com/v1');
  assert.equal(c.apiKeySecret, 'api-key');
  const e = caught(() => configFromValue(parseJson('{"base_ulr":"http://x"}')));
  assert.equal(e.class, 'client-error');
  assert.equal(e.message, 'invalid openai plugin configuration: unknown key "base_ulr" (known keys: base_url, model, api_key_secret, default_params, extra_headers)');
  for (const bad of ['{"base_url":"ftp://h/v1"}', '{"model":""}', '{"api_key_secret":"a}}b"}', '{"extra_headers":{"bad header":"x"}}', '[]']) {
    assert.equal(caught(() => parseConfigText(bad)).class, 'client-error', bad);
  }
  assert.equal(joinUrl(parseConfigText('{"base_url":"http://h:1"}'), CHAT), 'http://h:1/v1/chat/completions');
  assert.equal(joinUrl(parseConfigText('{"base_url":"https://openrouter.ai/api/v1/"}'), EMBEDDINGS), 'https://openrouter.ai/api/v1/embeddings');
});

test('request building', () => {
  const c = parseConfigText('{"base_url":"http://127.0.0.1:9/v1","default_params":{"temperature":0.2,"max_tokens":10}}');
  const r = buildRequest(c, item('Hi', '{"temperature":0.9}'), [['param.seed', '7'], ['param.stop', 'not json']]);
  assert.equal(r.url, 'http://127.0.0.1:9/v1/chat/completions');
  assert.equal(r.body, '{"max_tokens":10,"messages":[{"content":"Hi","role":"user"}],"model":"gpt-4o-mini","seed":7,"stop":"not json","temperature":0.9}');
  assert.deepEqual(r.headers, [['content-type', 'application/json'], ['authorization', 'Bearer {{secret:api-key}}']]);
  const e = buildRequest(c, item('hello', '{}', '/v1/embeddings'), []);
  assert.equal(e.body, '{"input":"hello","max_tokens":10,"model":"gpt-4o-mini","temperature":0.2}');
  assert.match(caught(() => buildRequest(c, item('Hi', '{}', '/v1/responses'), [])).message, /unsupported endpoint "\/v1\/responses"/);
  assert.match(caught(() => buildRequest(c, item('Hi', '{"stream":true}'), [])).message, /stream/);
  assert.equal(caught(() => buildRequest(c, item('', '{}'), [])).class, 'client-error');
});

test('responses, usage and OpenAI error refinements', () => {
  const ok = '{"id":"c1","model":"m","choices":[{"message":{"content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}';
  const s = interpret(CHAT, 200, [], new TextEncoder().encode(ok));
  assert.equal(s.output, 'Hello!');
  assert.equal(s.metadata, '{"finish_reason":"stop","id":"c1","model":"m"}');
  assert.deepEqual([s.usage.inputTokens, s.usage.outputTokens, s.usage.cachedInputTokens], [9n, 3n, 4n]);
  const bad = caught(() => interpret(CHAT, 200, [], new TextEncoder().encode('{"choices":[')));
  assert.equal(bad.class, 'invalid-response');
  assert.equal(bad.message, 'HTTP 200 response is not valid JSON (EOF while parsing a list at line 1 column 12); body: {"choices":[');
  const err = (status, code, message) =>
    caught(() => interpret(CHAT, status, [], new TextEncoder().encode(JSON.stringify({ error: { message, type: code, code } }))));
  assert.equal(err(429, 'insufficient_quota', 'quota').class, 'quota-exhausted');
  assert.equal(err(429, 'rate_limit_exceeded', 'Request too large for gpt-4o').class, 'too-large');
  const limited = err(429, 'rate_limit_exceeded', 'Please try again in 644ms.');
  assert.equal(limited.class, 'rate-limited');
  assert.equal(limited.retryAfterMs, 644n);
  assert.equal(err(400, 'context_length_exceeded', 'too long').class, 'too-large');
  assert.equal(err(401, 'invalid_api_key', 'nope').class, 'auth');
  assert.equal(caught(() => interpret(CHAT, 503, [], new Uint8Array())).message, 'HTTP 503 Service Unavailable');
  assert.equal(fromHttp(503, [['Retry-After', '1.5']], '').retryAfterMs, 1500n);
  assert.equal(usageFromOpenai(parseJson('{"usage":{"prompt_tokens":2.0}}')).inputTokens, 2n);
});

test('classification helpers', () => {
  assert.equal(parseTryAgainIn('please TRY AGAIN IN 1m30s'), 90000n);
  assert.equal(parseTryAgainIn('Please retry in 27.428353394s.'), 27429n);
  assert.equal(parseTryAgainIn('try again in a bit, or try again in 3s'), 3000n);
  assert.equal(parseRetryAfterHeader('Wed, 21 Oct 2015 07:28:00 GMT'), undefined);
  assert.equal(parseRetryAfterHeader('99999999999999999999999999999999999999999'), undefined);
  assert.equal(excerpt('héllo', 2), 'h…');
});
