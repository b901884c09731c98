// Command agent plays the Odigos agent's OpAMP conversation on gen/go's
// generated code, one step per command, for the cargo harness
// (tests/src/interop/agents.rs documents the line protocol).
//
// stdin: one JSON settings line, then one {"step": ...} line per step.
// stdout: one JSON line per step: {"exchanges": [...]} or {"error": ...}.
package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"time"

	pb "github.com/odigos-io/odigos/opampserver/protobufs"
	"google.golang.org/protobuf/proto"
)

type attribute struct {
	Key    string  `json:"key"`
	String *string `json:"string,omitempty"`
	Int    *int64  `json:"int,omitempty"`
}

type settings struct {
	URL                   string      `json:"url"`
	DeviceID              string      `json:"deviceId"`
	UID                   string      `json:"uid"`
	FirstSequenceNum      uint64      `json:"firstSequenceNum"`
	ContentType           string      `json:"contentType"`
	IdentifyingAttributes []attribute `json:"identifyingAttributes"`
	StartingError         string      `json:"startingError"`
	ExitingError          string      `json:"exitingError"`
}

type resourceAttribute struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type receivedConfig struct {
	Hash               string              `json:"hash"`
	Sections           []string            `json:"sections"`
	ResourceAttributes []resourceAttribute `json:"resourceAttributes"`
}

// exchange is what the agent itself saw of one request and its response.
type exchange struct {
	Sent         string          `json:"sent"`
	SequenceNum  uint64          `json:"sequenceNum"`
	HTTPStatus   int             `json:"httpStatus"`
	ContentType  string          `json:"contentType"`
	UIDEchoed    bool            `json:"uidEchoed"`
	Flags        uint64          `json:"flags"`
	RemoteConfig *receivedConfig `json:"remoteConfig"`
}

type agent struct {
	cfg          settings
	uid          []byte
	nextSeq      uint64
	configStatus *pb.RemoteConfigStatus
	// A fresh connection per request, as the Odigos agents do.
	http *http.Client
}

func (a *agent) description() *pb.AgentDescription {
	var attrs []*pb.KeyValue
	for _, attr := range a.cfg.IdentifyingAttributes {
		value := &pb.AnyValue{}
		switch {
		case attr.String != nil:
			value.Value = &pb.AnyValue_StringValue{StringValue: *attr.String}
		case attr.Int != nil:
			value.Value = &pb.AnyValue_IntValue{IntValue: *attr.Int}
		}
		attrs = append(attrs, &pb.KeyValue{Key: attr.Key, Value: value})
	}
	return &pb.AgentDescription{IdentifyingAttributes: attrs}
}

func healthy() *pb.ComponentHealth {
	return &pb.ComponentHealth{Healthy: true, Status: "Healthy"}
}

// send stamps uid, sequence number and the last remote config status, posts
// the message and reads what came back.
func (a *agent) send(label string, msg *pb.AgentToServer) (exchange, *pb.ServerToAgent, error) {
	msg.InstanceUid = a.uid
	msg.SequenceNum = a.nextSeq
	a.nextSeq++
	if a.configStatus != nil {
		msg.RemoteConfigStatus = a.configStatus
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return exchange{}, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, a.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return exchange{}, nil, err
	}
	// net/http trims header values, so a leading space never reaches the wire.
	req.Header.Set("Content-Type", a.cfg.ContentType)
	req.Header.Set("X-Odigos-DeviceId", a.cfg.DeviceID)
	resp, err := a.http.Do(req)
	if err != nil {
		return exchange{}, nil, err
	}
	defer resp.Body.Close()
	payload, err := io.ReadAll(resp.Body)
	if err != nil {
		return exchange{}, nil, err
	}
	seen := exchange{Sent: label, SequenceNum: msg.SequenceNum, HTTPStatus: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
	answer := &pb.ServerToAgent{}
	if err := proto.Unmarshal(payload, answer); err != nil {
		return seen, nil, fmt.Errorf("%s: response is not a ServerToAgent: %v", label, err)
	}
	seen.UIDEchoed = bytes.Equal(answer.InstanceUid, a.uid)
	seen.Flags = answer.Flags
	if rc := answer.RemoteConfig; rc != nil {
		// Like the Odigos agent: remember the hash and report it from now on.
		a.configStatus = &pb.RemoteConfigStatus{LastRemoteConfigHash: rc.ConfigHash}
		received, err := readConfig(rc)
		if err != nil {
			return seen, nil, err
		}
		seen.RemoteConfig = received
	}
	return seen, answer, nil
}

func readConfig(rc *pb.AgentRemoteConfig) (*receivedConfig, error) {
	received := &receivedConfig{Hash: hex.EncodeToString(rc.ConfigHash), Sections: []string{}}
	configMap := rc.GetConfig().GetConfigMap()
	for name := range configMap {
		received.Sections = append(received.Sections, name)
	}
	sort.Strings(received.Sections)
	sdk, ok := configMap["SDK"]
	if !ok {
		return nil, fmt.Errorf("remote config has no SDK section")
	}
	var parsed struct {
		RemoteResourceAttributes []resourceAttribute `json:"remoteResourceAttributes"`
	}
	if err := json.Unmarshal(sdk.Body, &parsed); err != nil {
		return nil, fmt.Errorf("SDK section is not JSON: %v", err)
	}
	received.ResourceAttributes = parsed.RemoteResourceAttributes
	return received, nil
}

func (a *agent) step(name string) ([]exchange, error) {
	var msg *pb.AgentToServer
	switch name {
	case "start":
		msg = &pb.AgentToServer{
			AgentDescription: a.description(),
			Health:           &pb.ComponentHealth{Healthy: false, LastError: a.cfg.StartingError, Status: "Starting"},
		}
	case "healthy":
		msg = &pb.AgentToServer{Health: healthy()}
	case "heartbeat":
		msg = &pb.AgentToServer{}
	case "disconnect":
		msg = &pb.AgentToServer{
			Health:          &pb.ComponentHealth{Healthy: false, LastError: a.cfg.ExitingError, Status: "ProcessTerminated"},
			AgentDisconnect: &pb.AgentDisconnect{},
		}
	default:
		return nil, fmt.Errorf("unknown step %q", name)
	}
	seen, answer, err := a.send(name, msg)
	if err != nil {
		return nil, err
	}
	exchanges := []exchange{seen}
	if answer.Flags&uint64(pb.ServerToAgentFlags_ServerToAgentFlags_ReportFullState) != 0 {
		full := &pb.AgentToServer{AgentDescription: a.description(), Health: healthy()}
		seen, _, err := a.send("fullState", full)
		if err != nil {
			return nil, err
		}
		exchanges = append(exchanges, seen)
	}
	return exchanges, nil
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	if !in.Scan() {
		fmt.Fprintln(os.Stderr, "no settings line on stdin")
		os.Exit(2)
	}
	var cfg settings
	if err := json.Unmarshal(in.Bytes(), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "settings: %v\n", err)
		os.Exit(2)
	}
	a := &agent{
		cfg:     cfg,
		uid:     []byte(cfg.UID),
		nextSeq: cfg.FirstSequenceNum,
		http: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		},
	}
	for in.Scan() {
		var command struct {
			Step string `json:"step"`
		}
		var reply any
		if err := json.Unmarshal(in.Bytes(), &command); err != nil {
			reply = map[string]string{"error": err.Error()}
		} else if exchanges, err := a.step(command.Step); err != nil {
			reply = map[string]string{"error": err.Error()}
		} else {
			reply = map[string]any{"exchanges": exchanges}
		}
		if err := out.Encode(reply); err != nil {
			os.Exit(1)
		}
		if command.Step == "disconnect" {
			return
		}
	}
}
