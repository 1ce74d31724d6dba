module batchllm/openai-go

go 1.24

require batchllm/sdk v0.0.0

// The SDK is used from this repository, never downloaded.
replace batchllm/sdk => ../sdk-go
