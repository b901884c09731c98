// The opamp-go peer of `cargo xtask bench`, built into target/bench/ by the bench.
module odigos-opamp-bench/opamp-go-peer

go 1.24.0

require github.com/open-telemetry/opamp-go v0.23.0

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)
