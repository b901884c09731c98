// Command opamp-go-client runs opamp-go's plain-HTTP client against the
// server for the cargo harness (tests/src/interop/thirdparty.rs).
//
// stdin: one JSON line of settings, later {"command":"stop"}.
// stdout: one JSON event per line: started, remoteConfig (what the client
// received, after it reported APPLIED), stopped.
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"
)

type attribute struct {
	Key    string  `json:"key"`
	String *string `json:"string,omitempty"`
	Int    *int64  `json:"int,omitempty"`
}

type settings struct {
	URL                   string      `json:"url"`
	DeviceID              string      `json:"deviceId"`
	InstanceUID           string      `json:"instanceUid"`
	IdentifyingAttributes []attribute `json:"identifyingAttributes"`
	HeartbeatSeconds      float64     `json:"heartbeatSeconds"`
}

// events serialises stdout: callbacks run on the client's goroutines.
type events struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (e *events) emit(event map[string]any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.enc.Encode(event); err != nil {
		fmt.Fprintf(os.Stderr, "writing an event: %v\n", err)
		os.Exit(1)
	}
}

// stderrLogger keeps the client's own log out of the event stream.
type stderrLogger struct{}

func (stderrLogger) Debugf(_ context.Context, format string, v ...any) {}
func (stderrLogger) Errorf(_ context.Context, format string, v ...any) {
	fmt.Fprintf(os.Stderr, "opamp-go: "+format+"\n", v...)
}

func fail(format string, v ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", v...)
	os.Exit(2)
}

func main() {
	stdin := bufio.NewScanner(os.Stdin)
	if !stdin.Scan() {
		fail("no settings line on stdin")
	}
	var cfg settings
	if err := json.Unmarshal(stdin.Bytes(), &cfg); err != nil {
		fail("settings: %v", err)
	}
	uidBytes, err := hex.DecodeString(cfg.InstanceUID)
	if err != nil || len(uidBytes) != 16 {
		fail("instanceUid must be 16 bytes of hex, got %q", cfg.InstanceUID)
	}
	var uid types.InstanceUid
	copy(uid[:], uidBytes)

	out := &events{enc: json.NewEncoder(os.Stdout)}
	opamp := client.NewHTTP(stderrLogger{})

	var attrs []*protobufs.KeyValue
	for _, a := range cfg.IdentifyingAttributes {
		value := &protobufs.AnyValue{}
		switch {
		case a.String != nil:
			value.Value = &protobufs.AnyValue_StringValue{StringValue: *a.String}
		case a.Int != nil:
			value.Value = &protobufs.AnyValue_IntValue{IntValue: *a.Int}
		}
		attrs = append(attrs, &protobufs.KeyValue{Key: a.Key, Value: value})
	}
	if err := opamp.SetAgentDescription(&protobufs.AgentDescription{IdentifyingAttributes: attrs}); err != nil {
		fail("SetAgentDescription: %v", err)
	}
	// Health first: ReportsHealth is refused while no health is set.
	if err := opamp.SetHealth(&protobufs.ComponentHealth{Healthy: true, Status: "Healthy"}); err != nil {
		fail("SetHealth: %v", err)
	}
	capabilities := protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
		protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat
	if err := opamp.SetCapabilities(&capabilities); err != nil {
		fail("SetCapabilities: %v", err)
	}

	heartbeat := time.Duration(cfg.HeartbeatSeconds * float64(time.Second))
	start := types.StartSettings{
		OpAMPServerURL:    cfg.URL,
		Header:            http.Header{"X-Odigos-DeviceId": []string{cfg.DeviceID}},
		InstanceUid:       uid,
		HeartbeatInterval: &heartbeat,
		Callbacks: types.Callbacks{
			OnMessage: func(ctx context.Context, msg *types.MessageData) {
				if msg.RemoteConfig == nil {
					return
				}
				received := describe(msg.RemoteConfig)
				status := &protobufs.RemoteConfigStatus{
					LastRemoteConfigHash: msg.RemoteConfig.ConfigHash,
					Status:               protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED,
				}
				if err := opamp.SetRemoteConfigStatus(status); err != nil {
					received["error"] = err.Error()
				}
				out.emit(received)
			},
		},
	}
	if err := opamp.Start(context.Background(), start); err != nil {
		fail("Start: %v", err)
	}
	out.emit(map[string]any{"event": "started"})

	// Run until told to stop (or stdin closes: the harness went away).
	for stdin.Scan() {
		var command struct {
			Command string `json:"command"`
		}
		if json.Unmarshal(stdin.Bytes(), &command) == nil && command.Command == "stop" {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := opamp.Stop(ctx); err != nil {
		fail("Stop: %v", err)
	}
	out.emit(map[string]any{"event": "stopped"})
}

// describe reports what the client received: the hash, the section names and
// the SDK section's resource attributes in the order they came.
func describe(config *protobufs.AgentRemoteConfig) map[string]any {
	event := map[string]any{"event": "remoteConfig", "hash": hex.EncodeToString(config.ConfigHash)}
	var sections []string
	for name := range config.GetConfig().GetConfigMap() {
		sections = append(sections, name)
	}
	sort.Strings(sections)
	event["sections"] = sections
	if sdk, ok := config.GetConfig().GetConfigMap()["SDK"]; ok {
		var parsed struct {
			RemoteResourceAttributes []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"remoteResourceAttributes"`
		}
		if err := json.Unmarshal(sdk.Body, &parsed); err != nil {
			event["error"] = "SDK section: " + err.Error()
		} else {
			event["resourceAttributes"] = parsed.RemoteResourceAttributes
		}
	}
	return event
}
