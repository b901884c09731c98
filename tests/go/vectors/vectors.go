// Package vectors encodes the golden vectors of tests/vectors with gen/go's
// generated code and decodes wire bytes back to proto3 JSON.
package vectors

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"

	// Registers the opamp.proto messages with the global registry.
	_ "github.com/odigos-io/odigos/opampserver/protobufs"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Vector is one file of tests/vectors: a message type and its proto3 JSON.
type Vector struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Message     json.RawMessage `json:"message"`
}

// ReadVector reads a vector file.
func ReadVector(path string) (Vector, error) {
	var v Vector
	data, err := os.ReadFile(path)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func newMessage(typeName string) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typeName))
	if err != nil {
		return nil, fmt.Errorf("message type %q: %w", typeName, err)
	}
	return mt.New().Interface(), nil
}

// Encode parses proto3 JSON as typeName and returns its wire bytes. Map
// entries are written in key order (Deterministic), as in every language here.
func Encode(typeName string, message []byte) ([]byte, error) {
	msg, err := newMessage(typeName)
	if err != nil {
		return nil, err
	}
	if err := protojson.Unmarshal(message, msg); err != nil {
		return nil, fmt.Errorf("parsing JSON as %s: %w", typeName, err)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(msg)
}

// Decode parses wire bytes as typeName and returns its proto3 JSON.
func Decode(typeName string, wire []byte) (json.RawMessage, error) {
	msg, err := newMessage(typeName)
	if err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(wire, msg); err != nil {
		return nil, fmt.Errorf("parsing bytes as %s: %w", typeName, err)
	}
	return protojson.Marshal(msg)
}

// RuntimeVersion is the google.golang.org/protobuf version this binary was built with.
func RuntimeVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == "google.golang.org/protobuf" {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "unknown"
}
