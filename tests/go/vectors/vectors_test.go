package vectors

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
)

// Every vector survives JSON -> bytes -> message -> JSON and bytes -> bytes
// unchanged with the generated Go code alone.
func TestRoundTrip(t *testing.T) {
	paths, err := filepath.Glob("../../vectors/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no vectors found in tests/vectors")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			v, err := ReadVector(path)
			if err != nil {
				t.Fatal(err)
			}
			wire, err := Encode(v.Type, v.Message)
			if err != nil {
				t.Fatal(err)
			}
			decoded, err := Decode(v.Type, wire)
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			if err := json.Unmarshal(v.Message, &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(decoded, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("decoded JSON differs from the vector:\n got %s\nwant %s", decoded, v.Message)
			}
			again, err := Encode(v.Type, decoded)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wire, again) {
				t.Fatalf("re-encoding the decoded JSON changed the bytes:\n%x\n%x", wire, again)
			}
		})
	}
	t.Logf("round-trip: %d vectors", len(paths))
}
