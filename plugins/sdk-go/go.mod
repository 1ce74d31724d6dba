module batchllm/sdk

go 1.24
