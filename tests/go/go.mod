// The Go side of the cross-language golden-vector tests: gen/go's generated
// code, driven by tests/src/langs (see tests/README.md).
module odigos-opamp-tests

go 1.23

require (
	github.com/odigos-io/odigos/opampserver/protobufs v0.0.0
	google.golang.org/protobuf v1.36.11
)

// The generated package under test, from this checkout.
replace github.com/odigos-io/odigos/opampserver/protobufs => ../../gen/go
