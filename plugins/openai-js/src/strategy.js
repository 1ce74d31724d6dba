// batchllm strategy plugin for OpenAI-compatible APIs, in JavaScript: the
// component's entry point (componentize-js). It exports the `llm-strategy`
// interface of wit/strategy.wit and behaves exactly as the Rust openai
// plugin (plugins/openai); tests/e2e/conformance.rs checks that.
//
// HTTP goes through the host's `http.send` import, which reports timeouts,
// oversized bodies and network failures apart, as the Rust plugin's
// classification needs. strategy-fetch.js is the same plugin on `fetch`.
import { makeStrategy, sendImport } from './plugin.js';

export const llmStrategy = makeStrategy(sendImport);
