// Command serde-probe reads one JSON string per stdin line (a document) and
// writes one JSON string per line: what package serdejson makes of the
// document, printed back, or "ERR <message>". tests/e2e/conformance.rs feeds
// it the same documents as serde_json (plugins/sdk/examples/serde_probe.rs)
// and expects the same answers.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"batchllm/sdk/serdejson"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		line := in.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		literal, err := serdejson.Parse(line)
		doc, ok := literal.(string)
		if err != nil || !ok {
			fmt.Fprintf(os.Stderr, "serde-probe: each line must be a JSON string: %q\n", line)
			os.Exit(2)
		}
		var answer string
		if v, err := serdejson.Parse(doc); err != nil {
			answer = "ERR " + err.Error()
		} else {
			answer = serdejson.Stringify(v)
		}
		out.WriteString(serdejson.Stringify(answer))
		out.WriteByte('\n')
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "serde-probe: reading stdin: %v\n", err)
		os.Exit(1)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(os.Stderr, "serde-probe: writing stdout: %v\n", err)
		os.Exit(1)
	}
}
