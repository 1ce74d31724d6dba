// A minimal batchllm strategy plugin in JavaScript: one OpenAI-compatible
// chat completion per attempt. Built into a WebAssembly component by
// componentize-js (./build.sh), which embeds a JS engine: the component needs
// no Node at run time.
//
// Copy this folder, then edit:
// - parseConfig for your settings (here `base_url` and `model`);
// - requestBody and sendRequest for your provider's request;
// - interpret, usage and classify for its answers and errors.
//
// What the host guarantees, and what a strategy must never do, is in
// docs/writing-a-plugin.md of the batchllm-host repository. In short: the
// host owns every policy (retries, backoff, cooldowns, deadlines,
// accounting). A strategy translates one job into one provider request,
// translates the answer, and classifies failures honestly. It never retries,
// never sleeps and keeps no per-item facts in module variables.
//
// Types, as componentize-js maps the WIT (wit/strategy.wit):
// - records are plain objects with camelCase fields (`attempt.timeLeftMs`);
// - u64 values are BigInts (`timeLeftMs`, token counts, `retryAfterMs`);
//   u16 and u32 values are numbers;
// - an `option` is `undefined` (or `null`) for none;
// - a `result` error is returned by throwing: throw a strategy-error object
//   ({ class, message, ... }) from prepare and execute, a string from cleanup.
//   Anything else thrown (an Error from a bug) is not a strategy-error and
//   makes the call trap; the host records `plugin_trap` and discards the
//   instance. So every expected failure below is a classified error.

// The host's services and its HTTP client: the imports of the `strategy` world.
import { config as hostConfig, log } from 'batchllm:strategy/host@0.1.0';
import { send } from 'batchllm:strategy/http@0.1.0';

/** Where requests go unless the configuration says otherwise. */
const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
/** The model used when neither the job nor the configuration names one. */
const DEFAULT_MODEL = 'gpt-4o-mini';
/**
 * The host's name for the key given with `--api-key-env VAR` (or `--secret
 * api-key=env:VAR`). The plugin never sees the key: it writes
 * `{{secret:api-key}}` into a header and the host substitutes it, only for
 * hosts the secret is granted for.
 */
const API_KEY_SECRET = 'api-key';
/** Longest provider message quoted in an error, in characters. */
const MAX_MESSAGE_CHARS = 1000;

/** The `llm-strategy` export. */
export const llmStrategy = {
  /**
   * Runs once per run, before any `execute`, in one instance. Check the
   * configuration here: an error stops the run before any item is sent.
   * Run-wide set-up (a provider-side cache, a resolved model) would be
   * recorded with the host's `runStateSet` so every instance can read it.
   */
  prepare(configText) {
    const config = parseConfig(configText);
    log('info', `template strategy: base_url=${config.baseUrl} model=${config.model}`);
  },

  /**
   * Runs for each attempt of each item, in any instance: exactly one provider
   * request, never a retry, never a sleep. The host decides whether there is
   * another attempt, from the class of the error.
   */
  execute(item, attempt, _state) {
    // `prepare` ran in another instance; every instance reads the same
    // configuration from the host. Parsing it is cheap next to the call.
    const config = parseConfig(hostConfig());
    const body = requestBody(config, item);
    const response = sendRequest(config, body, attempt);
    return interpret(response);
  },

  /**
   * Runs after a failed `execute` that the host will try again, before the
   * next attempt. It returns changes to the item's retry state (`[key,
   * value]` sets, `[key, undefined]` removes), which the next `execute`
   * receives as `state`. This strategy does not adapt, so it changes nothing.
   * (An adapting one might raise the temperature after an `invalid-response`,
   * or switch to a bigger model.)
   */
  onError(_item, _error, _attempt, _state) {
    return [];
  },

  /**
   * Runs once at the end of the run when `prepare` succeeded (after success,
   * failure, abort or Ctrl-C). Nothing was set up, so nothing to tear down.
   * A thrown string here is only logged.
   */
  cleanup() {},
};

/** A strategy-error: `klass` is an `error-class` name in kebab-case. */
function failure(klass, message, fields = {}) {
  return { class: klass, message, ...fields };
}

/**
 * Parses the plugin's settings (a JSON object from `--plugin-config KEY=VALUE`
 * and the `[plugin-config]` table of the config file). Unknown keys are
 * refused so that a misspelt setting is an error instead of being ignored.
 */
function parseConfig(text) {
  const invalid = (why) => failure('client-error', `invalid plugin configuration: ${why}`);
  let config = null;
  if (text.trim() !== '') {
    try {
      config = JSON.parse(text);
    } catch (e) {
      throw invalid(`not valid JSON: ${e.message}`);
    }
  }
  config ??= {};
  if (typeof config !== 'object' || Array.isArray(config)) {
    throw invalid(`expected a JSON object, got ${JSON.stringify(config)}`);
  }
  const unknown = Object.keys(config).find((k) => k !== 'base_url' && k !== 'model');
  if (unknown !== undefined) throw invalid(`unknown key ${JSON.stringify(unknown)} (known keys: base_url, model)`);
  const setting = (key, fallback) => {
    const value = config[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value === 'string' && value.trim() !== '') return value.trim();
    throw invalid(`${key} must be a non-empty string, got ${JSON.stringify(value)}`);
  };
  const baseUrl = setting('base_url', DEFAULT_BASE_URL);
  if (!baseUrl.startsWith('http://') && !baseUrl.startsWith('https://')) {
    throw invalid(`base_url must start with http:// or https://, got ${JSON.stringify(baseUrl)}`);
  }
  return { baseUrl: baseUrl.replace(/\/+$/, ''), model: setting('model', DEFAULT_MODEL) };
}

/**
 * The chat-completions request body for `item`.
 *
 * Both input shapes work: a simple line gives a `prompt` (and maybe `params`
 * such as `temperature`); an OpenAI Batch line gives the whole request body
 * in `params` (with `messages`) and an empty prompt. The job's `params` win
 * over the configuration; the prompt is appended as the last user message.
 */
function requestBody(config, item) {
  if (item.endpoint != null && !item.endpoint.endsWith('/chat/completions')) {
    throw failure('client-error', `this plugin only serves /v1/chat/completions, not ${item.endpoint}`);
  }
  let body;
  try {
    body = JSON.parse(item.params);
  } catch {
    body = undefined;
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw failure('client-error', "the job's params must be a JSON object");
  }
  // One request, one whole answer: streaming is not supported.
  if (body.stream === true) throw failure('client-error', '"stream": true is not supported');
  body.model ??= config.model;
  if (item.prompt !== '') {
    body.messages ??= [];
    if (!Array.isArray(body.messages)) throw failure('client-error', "the job's params.messages must be an array");
    body.messages.push({ role: 'user', content: item.prompt });
  }
  if (body.messages === undefined) throw failure('client-error', 'the job has neither a prompt nor params.messages');
  return body;
}

/**
 * Sends the one request of this attempt through the host's `http.send`.
 *
 * The host checks the destination against the hosts granted with
 * `--allow-host`, substitutes the `{{secret:...}}` placeholder, and sees every
 * status and rate-limit header. The attempt's time left is passed on as the
 * HTTP timeout, so a hung provider ends as a `timeout` in time.
 */
function sendRequest(config, body, attempt) {
  try {
    return send({
      method: 'POST',
      url: `${config.baseUrl}/chat/completions`,
      headers: [
        ['content-type', 'application/json'],
        ['authorization', `Bearer {{secret:${API_KEY_SECRET}}}`],
      ],
      body: new TextEncoder().encode(JSON.stringify(body)),
      timeoutMs: attempt.timeLeftMs,
    });
  } catch (e) {
    // The import's `http-error` variant arrives as `e.payload`: { tag, val }.
    const err = e?.payload ?? { tag: 'other', val: String(e) };
    const [klass, what] = {
      // Refused by the egress policy (host not granted, or a secret not
      // allowed for it); the host records it as `egress_denied`.
      denied: ['client-error', 'egress denied'],
      timeout: ['timeout', 'request timed out'],
      network: ['network', 'network error'],
      'invalid-request': ['client-error', 'invalid request'],
      'too-large': ['too-large', 'body too large'],
    }[err.tag] ?? ['other', 'http error'];
    throw failure(klass, `${what}: ${err.val}`);
  }
}

/** Turns the provider's answer into a success or a classified error. */
function interpret(response) {
  const text = new TextDecoder().decode(response.body);
  if (response.status < 200 || response.status > 299) throw classify(response, text);
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // Retried at once by the host (no backoff): the next answer may be fine.
    throw failure('invalid-response', `HTTP ${response.status} response is not valid JSON (${e.message}): ${excerpt(text)}`, {
      httpStatus: response.status,
    });
  }
  const choice = value?.choices?.[0];
  const output = choice?.message?.content;
  if (typeof output !== 'string' || output === '') {
    throw failure('invalid-response', 'the response has no choices[0].message.content', {
      httpStatus: response.status,
      usage: usage(value), // an unusable answer may still be billed
      responseBody: text,
    });
  }
  return {
    output,
    usage: usage(value),
    // Written to the results file as `response.body`.
    responseBody: text,
    metadata: JSON.stringify({ model: value.model ?? null, finish_reason: choice.finish_reason ?? null }),
  };
}

/** A token count as the u64 BigInt the bindings want, or undefined. */
function count(n) {
  return Number.isSafeInteger(n) && n >= 0 ? BigInt(n) : undefined;
}

/**
 * Token usage, normalised: `inputTokens` is the whole prompt, cached tokens
 * included (OpenAI's `prompt_tokens` already is); cached and reasoning tokens
 * are subsets of input and output.
 */
function usage(value) {
  const u = value?.usage;
  const input = count(u?.prompt_tokens);
  if (input === undefined) return undefined;
  return {
    inputTokens: input,
    outputTokens: count(u.completion_tokens) ?? 0n,
    cachedInputTokens: count(u.prompt_tokens_details?.cached_tokens),
    cacheWriteTokens: undefined,
    reasoningTokens: count(u.completion_tokens_details?.reasoning_tokens),
  };
}

/**
 * Classifies a non-2xx answer. The host's retry policy is keyed on the
 * class, so be honest: a transient failure must be retryable, a wrong request
 * must not be.
 */
function classify(response, text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const status = response.status;
  const code = body?.error?.code;
  let klass;
  // OpenAI answers "out of credit" with a 429 too; retrying cannot help.
  if (status === 429 && code === 'insufficient_quota') klass = 'quota-exhausted';
  else if (status === 429) klass = 'rate-limited';
  else if (status === 401 || status === 403) klass = 'auth';
  else if (status === 402) klass = 'quota-exhausted';
  else if (status === 408) klass = 'timeout';
  else if (status === 413) klass = 'too-large';
  else if (status >= 400 && status <= 499) klass = 'client-error';
  else if (status >= 500 && status <= 599) klass = 'overloaded';
  // 1xx, 3xx (the host never follows redirects): unexpected.
  else klass = 'other';
  const message = typeof body?.error?.message === 'string' ? body.error.message : text;
  return failure(klass, `HTTP ${status}: ${excerpt(message)}`, {
    httpStatus: status,
    retryAfterMs: retryAfterMs(response.headers),
    responseBody: body === undefined ? undefined : JSON.stringify(body),
  });
}

/**
 * The wait the provider asked for, as a BigInt of milliseconds:
 * `retry-after-ms`, else `retry-after` in seconds. The HTTP-date form of
 * `retry-after` is not read: a plugin has no trustworthy clock to compare it
 * with.
 */
function retryAfterMs(headers) {
  const header = (name) => headers.find(([k]) => k.toLowerCase() === name)?.[1]?.trim();
  const number = (v) => (v !== undefined && /^[0-9]+(\.[0-9]+)?$/.test(v) ? Number(v) : undefined);
  const ms = number(header('retry-after-ms')) ?? (number(header('retry-after')) ?? NaN) * 1000;
  return Number.isFinite(ms) && ms > 0 ? BigInt(Math.ceil(ms)) : undefined;
}

/** `text` trimmed and cut to MAX_MESSAGE_CHARS characters. */
function excerpt(text) {
  const t = text.trim();
  return t.length <= MAX_MESSAGE_CHARS ? t : `${t.slice(0, MAX_MESSAGE_CHARS)}…`;
}
