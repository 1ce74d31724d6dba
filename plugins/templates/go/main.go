// Command my-strategy is a minimal batchllm strategy plugin in Go: one
// OpenAI-compatible chat completion per attempt. ./build.sh turns it into a
// WebAssembly component (GOOS=wasip1, then wasm-tools).
//
// Copy this folder, then edit:
//   - config.go: parseConfig, for your settings (here base_url and model);
//   - request.go: requestBody and send, for your provider's request;
//   - the sdk.API the host's classifier reads your provider's answers as
//     (sdk.OpenAIChat, sdk.AnthropicMessages, sdk.GeminiGenerateContent,
//     ..., or sdk.Generic for any JSON API), or your own reading of them.
//
// What the host guarantees, and what a strategy must never do, is in
// docs/writing-a-plugin.md of the batchllm-host repository. In short: the
// host owns every policy (retries, backoff, cooldowns, deadlines,
// accounting). A strategy translates one job into one provider request,
// translates the answer, and classifies failures honestly. It never retries,
// never sleeps and keeps no per-item facts in globals.
//
// The glue between Go and the WIT contract (wit/strategy.wit) is the sdk
// package (plugins/sdk-go): its types mirror the WIT records (an option is a
// pointer, nil for none; a result error is a *sdk.StrategyError), sdk.Send
// is the host's http.send, sdk.Log and sdk.Config the host's log and config.
// A panic does not trap: the sdk turns it into an error of class other, but
// every expected failure here is a classified error.
package main

import "batchllm/sdk"

// strategy is the plugin. It holds no state: the configuration is read from
// the host on each call, and per-item facts would go in the retry state.
type strategy struct{}

// Prepare runs once per run, before any Execute, in one instance. Check the
// configuration here: an error stops the run before any item is sent.
// Run-wide set-up (a provider-side cache, a resolved model) would be recorded
// with sdk.RunStateSet so every instance can read it.
func (strategy) Prepare(doc string) *sdk.StrategyError {
	config, err := parseConfig(doc)
	if err != nil {
		return err
	}
	sdk.Log(sdk.LevelInfo, "template strategy: base_url="+config.BaseURL+" model="+config.Model)
	return nil
}

// Execute runs for each attempt of each item, in any instance: exactly one
// provider request, never a retry, never a sleep. The host decides whether
// there is another attempt, from the class of the error.
func (strategy) Execute(item sdk.Item, attempt sdk.Attempt, state []sdk.StateEntry) (sdk.Success, *sdk.StrategyError) {
	// Prepare ran in another instance; every instance reads the same
	// configuration from the host. Parsing it is cheap next to the call.
	config, err := parseConfig(sdk.Config())
	if err != nil {
		return sdk.Success{}, err
	}
	body, err := requestBody(config, item)
	if err != nil {
		return sdk.Success{}, err
	}
	response, err := send(config, body, attempt)
	if err != nil {
		return sdk.Success{}, err
	}
	// The host reads the answer, with the code its own plugins use: the
	// output (the first choice's text), usage, metadata; or the failure's
	// class (the status, the provider's error code, an answer with no
	// content), message, wait and billed tokens. Classify honestly if you
	// read answers yourself: the host's retry policy is keyed on the class.
	return sdk.Classify(sdk.OpenAIChat, response.Status, response.Headers, response.Body)
}

// OnError runs after a failed Execute that the host will try again, before
// the next attempt. It returns changes to the item's retry state (a
// StateChange with a Value sets the key, with nil removes it), which the
// next Execute receives as state. This strategy does not adapt, so it
// changes nothing. (An adapting one might raise the temperature after an
// invalid-response, or switch to a bigger model.)
func (strategy) OnError(item sdk.Item, failure sdk.StrategyError, attempt sdk.Attempt, state []sdk.StateEntry) []sdk.StateChange {
	return nil
}

// Cleanup runs once at the end of the run when Prepare succeeded (after
// success, failure, abort or Ctrl-C). Nothing was set up, so there is
// nothing to tear down; an error here is only logged.
func (strategy) Cleanup() error { return nil }

// The component's start function runs package initialisation, not main: the
// strategy is registered here.
func init() { sdk.Export(strategy{}) }

// main is required by the Go toolchain and never runs.
func main() {}
