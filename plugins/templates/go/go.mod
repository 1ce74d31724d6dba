module my-strategy

go 1.24

require batchllm/sdk v0.0.0

// The Go SDK (the canonical-ABI glue and helpers) comes from the
// batchllm-host repository, never from a module proxy. When you move this
// folder out of the repository, copy plugins/sdk-go along and point this
// path at it (see README.md).
replace batchllm/sdk => ../../sdk-go
