package sdk

import (
	"batchllm/sdk/jsonvalue"
	"batchllm/sdk/text"
)

// Strategy is what a plugin implements: the `llm-strategy` interface of
// wit/strategy.wit. A strategy translates and classifies; it never retries,
// never sleeps and keeps no per-item facts in globals (another instance may
// run the next attempt: use the retry state).
type Strategy interface {
	// Prepare runs once per run, before any Execute, with the plugin's
	// configuration (a JSON object). An error stops the run.
	Prepare(config string) *StrategyError
	// Execute performs one attempt of one item: build the request, send it
	// with Send, translate the answer. state is the item's retry state.
	Execute(item Item, attempt Attempt, state []StateEntry) (Success, *StrategyError)
	// OnError may adapt the next attempt after a failure by returning
	// changes to the item's retry state.
	OnError(item Item, err StrategyError, attempt Attempt, state []StateEntry) []StateChange
	// Cleanup tears down what Prepare set up; its error is only logged.
	Cleanup() error
}

// exported is the registered strategy (set once, from an init function).
var exported Strategy

// Export registers s as the plugin's strategy. Call it from an init
// function of the plugin's main package: the component's start function
// runs package initialisation, not main.
func Export(s Strategy) {
	exported = s
}

// ParseConfig parses a configuration document as the Rust SDK's
// `parse_config` does: empty text and `null` mean an empty object; anything
// else must be a JSON object (a client-error otherwise).
func ParseConfig(doc string) (jsonvalue.Object, *StrategyError) {
	if text.Trim(doc) == "" {
		return jsonvalue.Object{}, nil
	}
	v, err := jsonvalue.Parse(doc)
	if err != nil {
		return nil, NewError(ClientError, "plugin configuration is not valid JSON: "+err.Error())
	}
	switch obj := v.(type) {
	case nil:
		return jsonvalue.Object{}, nil
	case jsonvalue.Object:
		return obj, nil
	}
	return nil, NewError(ClientError, "plugin configuration must be a JSON object, got "+jsonvalue.Kind(v))
}

// ParamsObject is item.Params parsed as a JSON object (the Rust SDK's
// `Item::params_object`): empty text counts as {}; anything else that is not
// an object is a client-error naming the item.
func ParamsObject(item Item) (jsonvalue.Object, *StrategyError) {
	if text.Trim(item.Params) == "" {
		return jsonvalue.Object{}, nil
	}
	v, err := jsonvalue.Parse(item.Params)
	if err != nil {
		return nil, NewError(ClientError, "item "+text.DebugStr(item.ID)+": params is not valid JSON: "+err.Error())
	}
	if obj, ok := v.(jsonvalue.Object); ok {
		return obj, nil
	}
	return nil, NewError(ClientError, "item "+text.DebugStr(item.ID)+": params must be a JSON object, got "+jsonvalue.Kind(v))
}
