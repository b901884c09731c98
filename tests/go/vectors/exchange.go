package vectors

import (
	"encoding/hex"
	"encoding/json"
)

// The request and response of one harness exchange (tests/src/langs/protocol.rs).

// Request asks for vector files to be encoded and for wire bytes to be decoded.
type Request struct {
	Encode []EncodeItem `json:"encode"`
	Decode []DecodeItem `json:"decode"`
}

// EncodeItem names a vector file.
type EncodeItem struct {
	ID   string `json:"id"`
	Path string `json:"path"`
}

// DecodeItem carries wire bytes as hex.
type DecodeItem struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Hex  string `json:"hex"`
}

// Runtime says which protobuf library answered.
type Runtime struct {
	Language string `json:"language"`
	Library  string `json:"library"`
	Version  string `json:"version"`
}

// Response answers every item of a Request, in order; a failed item carries
// Error instead of a result.
type Response struct {
	Runtime Runtime         `json:"runtime"`
	Encoded []EncodedResult `json:"encoded"`
	Decoded []DecodedResult `json:"decoded"`
}

// EncodedResult is one vector's wire bytes as hex.
type EncodedResult struct {
	ID    string `json:"id"`
	Hex   string `json:"hex,omitempty"`
	Error string `json:"error,omitempty"`
}

// DecodedResult is one message's proto3 JSON.
type DecodedResult struct {
	ID    string          `json:"id"`
	JSON  json.RawMessage `json:"json,omitempty"`
	Error string          `json:"error,omitempty"`
}

// Answer runs every item of req.
func Answer(req Request) Response {
	resp := Response{
		Runtime: Runtime{Language: "go", Library: "google.golang.org/protobuf", Version: RuntimeVersion()},
		Encoded: []EncodedResult{},
		Decoded: []DecodedResult{},
	}
	for _, item := range req.Encode {
		result := EncodedResult{ID: item.ID}
		if wire, err := encodeFile(item.Path); err != nil {
			result.Error = err.Error()
		} else {
			result.Hex = hex.EncodeToString(wire)
		}
		resp.Encoded = append(resp.Encoded, result)
	}
	for _, item := range req.Decode {
		result := DecodedResult{ID: item.ID}
		if out, err := decodeHex(item.Type, item.Hex); err != nil {
			result.Error = err.Error()
		} else {
			result.JSON = out
		}
		resp.Decoded = append(resp.Decoded, result)
	}
	return resp
}

func encodeFile(path string) ([]byte, error) {
	v, err := ReadVector(path)
	if err != nil {
		return nil, err
	}
	return Encode(v.Type, v.Message)
}

func decodeHex(typeName, text string) (json.RawMessage, error) {
	wire, err := hex.DecodeString(text)
	if err != nil {
		return nil, err
	}
	return Decode(typeName, wire)
}
