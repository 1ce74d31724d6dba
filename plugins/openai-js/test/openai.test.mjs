// Unit tests of the plugin's logic, run natively: `npm test` or
// `node --test plugins/openai-js/test/`. Answers are read by the host's
// classifier (tested with it, in plugins/classify); the end-to-end
// conformance test (tests/e2e/conformance.rs) compares the built component
// with the Rust plugin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromHttpError, parseJson, stringify } from '../src/sdk.js';
import { API, buildRequest, configFromValue, joinUrl, parseConfigText, CHAT, EMBEDDINGS } from '../src/openai.js';

const item = (prompt, params = '{}', endpoint = undefined) => ({ id: 'job-1', prompt, params, context: undefined, endpoint });
const caught = (f) => {
  try {
    f();
  } catch (e) {
    return e;
  }
  assert.fail('expected a throw');
};

test('JSON round-trips, large integers included where the engine can tell', () => {
  assert.deepEqual(parseJson('{"b":1,"a":[1.5,"x",null]}'), { b: 1, a: [1.5, 'x', null] });
  const parsed = parseJson('{"seed":12345678901234567}').seed;
  // StarlingMonkey (the component's engine) and Node >= 21 give the parser
  // the source text; older engines round, as JSON.parse always did. The
  // e2e conformance test checks the component's requests to the digit.
  if (typeof JSON.rawJSON === 'function') {
    assert.equal(parsed, 12345678901234567n);
    assert.equal(stringify({ seed: parsed, t: 0.2 }), '{"seed":12345678901234567,"t":0.2}');
  } else {
    assert.equal(parsed, 12345678901234568);
  }
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
  assert.deepEqual(JSON.parse(r.body), {
    max_tokens: 10,
    messages: [{ content: 'Hi', role: 'user' }],
    model: 'gpt-4o-mini',
    seed: 7,
    stop: 'not json',
    temperature: 0.9,
  });
  assert.deepEqual(r.headers, [['content-type', 'application/json'], ['authorization', 'Bearer {{secret:api-key}}']]);
  assert.equal(API[r.endpoint], 'openai-chat');
  const e = buildRequest(c, item('hello', '{}', '/v1/embeddings'), []);
  assert.deepEqual(JSON.parse(e.body), { input: 'hello', max_tokens: 10, model: 'gpt-4o-mini', temperature: 0.2 });
  assert.equal(API[e.endpoint], 'openai-embeddings');
  assert.match(caught(() => buildRequest(c, item('Hi', '{}', '/v1/responses'), [])).message, /unsupported endpoint "\/v1\/responses"/);
  assert.match(caught(() => buildRequest(c, item('Hi', '{"stream":true}'), [])).message, /stream/);
  assert.equal(caught(() => buildRequest(c, item('', '{}'), [])).class, 'client-error');
});

test('transport failures', () => {
  assert.deepEqual(fromHttpError({ tag: 'timeout', val: 'slow' }).message, 'request timed out: slow');
  assert.equal(fromHttpError({ tag: 'denied', val: 'no' }).class, 'client-error');
});
