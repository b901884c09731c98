// Command vectors answers one harness exchange: a Request as JSON on stdin,
// the Response as JSON on stdout (see tests/src/langs/protocol.rs).
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"odigos-opamp-tests/vectors"
)

func main() {
	var req vectors.Request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintf(os.Stderr, "reading the request from stdin: %v\n", err)
		os.Exit(2)
	}
	if err := json.NewEncoder(os.Stdout).Encode(vectors.Answer(req)); err != nil {
		fmt.Fprintf(os.Stderr, "writing the response: %v\n", err)
		os.Exit(1)
	}
}
