// Command openai-go is the openai strategy plugin written in Go: the same
// behaviour as the Rust plugin (plugins/openai), on the host's `http.send`
// import. Requests are built in package openai; answers are read by the
// host's classifier (sdk.Classify, the Rust plugin's own code). This file
// adapts it to the sdk's Strategy interface. Build with ./build.sh.
package main

import (
	"strconv"

	"batchllm/sdk"
	"batchllm/sdk/text"

	"batchllm/openai-go/openai"
)

// config is the configuration, parsed once per instance (it is the same for
// the whole run; nothing per item is kept here): by Prepare in the instance
// that runs it, else from the host on first use.
var config *parsedConfig

type parsedConfig struct {
	value openai.Config
	err   *sdk.StrategyError
}

func loadConfig() (openai.Config, *sdk.StrategyError) {
	if config == nil {
		value, err := openai.ParseConfig(sdk.Config())
		config = &parsedConfig{value, err}
	}
	return config.value, config.err
}

type strategy struct{}

func (strategy) Prepare(doc string) *sdk.StrategyError {
	parsed, err := openai.ParseConfig(doc)
	if err != nil {
		return err
	}
	authorization := "none"
	if parsed.APIKeySecret != nil {
		authorization = "secret " + text.DebugStr(*parsed.APIKeySecret)
	}
	sdk.Log(sdk.LevelInfo, "openai strategy: base_url="+parsed.BaseURL+" model="+parsed.Model+" authorization="+authorization)
	if config == nil {
		config = &parsedConfig{value: parsed}
	}
	return nil
}

func (strategy) Execute(item sdk.Item, attempt sdk.Attempt, state []sdk.StateEntry) (sdk.Success, *sdk.StrategyError) {
	cfg, err := loadConfig()
	if err != nil {
		return sdk.Success{}, err
	}
	endpoint, request, err := openai.BuildRequest(cfg, item, state, attempt.TimeLeftMs)
	if err != nil {
		return sdk.Success{}, err
	}
	sdk.Log(sdk.LevelTrace, "POST "+request.URL+" (attempt "+strconv.FormatUint(uint64(attempt.Number), 10)+
		", timeout "+strconv.FormatUint(attempt.TimeLeftMs, 10)+" ms)")
	response, httpErr := sdk.Send(request)
	if httpErr != nil {
		return sdk.Success{}, sdk.FromHTTPError(httpErr)
	}
	return sdk.Classify(endpoint.API(), response.Status, response.Headers, response.Body)
}

// OnError changes nothing: this strategy does not adapt its attempts.
func (strategy) OnError(sdk.Item, sdk.StrategyError, sdk.Attempt, []sdk.StateEntry) []sdk.StateChange {
	return nil
}

func (strategy) Cleanup() error { return nil }

func init() { sdk.Export(strategy{}) }

// main is required by the Go toolchain but never runs: the component's
// start function initialises the runtime and packages only.
func main() {}
