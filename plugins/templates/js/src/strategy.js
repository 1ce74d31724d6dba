// A minimal batchllm strategy plugin in JavaScript: one OpenAI-compatible
// chat completion per attempt. Built into a WebAssembly component by
// componentize-js (./build.sh), which embeds a JS engine: the component needs
// no Node at run time.
//
// Copy this folder, then edit:
// - parseConfig for your settings (here `base_url` and `model`);
// - requestBody and sendRequest for your provider's request;
// - the API the host's classifier reads your provider's answers as
//   ('openai-chat', 'anthropic-messages', 'gemini-generate-content', ..., or
//   'generic' for any JSON API), or your own reading of them.
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

// The host's services, its HTTP client and its classifier: the imports of
// the `strategy` world.
import { classify } from 'batchllm:strategy/classify@0.2.0';
import { config as hostConfig, log } from 'batchllm:strategy/host@0.2.0';
import { send } from 'batchllm:strategy/http@0.2.0';

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
    // The host reads the answer, with the code its own plugins use: the
    // output (the first choice's text), usage, metadata; or the failure's
    // class (the status, the provider's error code, an answer with no
    // content), message, wait and billed tokens, thrown as a strategy-error.
    // Classify honestly if you read answers yourself: the host's retry
    // policy is keyed on the class.
    try {
      return classify('openai-chat', response.status, response.headers, response.body);
    } catch (e) {
      throw e.payload ?? e;
    }
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
