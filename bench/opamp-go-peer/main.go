// The opamp-go peer of `cargo xtask bench`: an OpAMP server on opamp-go's `server`
// package whose OnMessage does the same in-memory work as ours: find or insert the agent
// by instance uid, echo the uid, and send a remote config on the first message.
// Started and stopped (SIGTERM) by the bench; see BENCHMARKS.md.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"
)

const capabilities = uint64(protobufs.ServerCapabilities_ServerCapabilities_AcceptsStatus |
	protobufs.ServerCapabilities_ServerCapabilities_OffersRemoteConfig)

// agent is what the peer keeps per instance uid, like our server's state.
type agent struct {
	mu          sync.Mutex
	lastSeq     uint64
	lastSeen    time.Time
	description *protobufs.AgentDescription
	health      *protobufs.ComponentHealth
	config      *protobufs.AgentRemoteConfig
}

type peer struct {
	nodeName string
	mu       sync.Mutex
	agents   map[string]*agent
}

func (p *peer) onMessage(_ context.Context, _ types.Connection, msg *protobufs.AgentToServer) *protobufs.ServerToAgent {
	resp := &protobufs.ServerToAgent{InstanceUid: msg.InstanceUid, Capabilities: capabilities}
	p.mu.Lock()
	a := p.agents[string(msg.InstanceUid)]
	p.mu.Unlock()
	if a == nil {
		if msg.AgentDescription == nil {
			resp.Flags = uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)
			return resp
		}
		// Built outside the map lock; a concurrent first message of the same uid wins.
		fresh := &agent{
			lastSeq:     msg.SequenceNum,
			lastSeen:    time.Now(),
			description: msg.AgentDescription,
			health:      msg.Health,
			config:      p.remoteConfig(msg.AgentDescription),
		}
		p.mu.Lock()
		if existing := p.agents[string(msg.InstanceUid)]; existing != nil {
			fresh = existing
		} else {
			p.agents[string(msg.InstanceUid)] = fresh
		}
		p.mu.Unlock()
		resp.RemoteConfig = fresh.config
		return resp
	}
	a.mu.Lock()
	a.lastSeq = msg.SequenceNum
	a.lastSeen = time.Now()
	if msg.AgentDescription != nil {
		a.description = msg.AgentDescription
	}
	if msg.Health != nil {
		a.health = msg.Health
	}
	a.mu.Unlock()
	return resp
}

type keyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type sdkConfig struct {
	RemoteResourceAttributes []keyValue `json:"remoteResourceAttributes"`
	TraceSignal              struct {
		Enabled             bool `json:"enabled"`
		DefaultEnabledValue bool `json:"defaultEnabledValue"`
	} `json:"traceSignal"`
}

// remoteConfig builds the Odigos-style SDK and InstrumentationLibraries sections from the
// agent's self-reported k8s attributes, hashed over the bodies in key order.
func (p *peer) remoteConfig(desc *protobufs.AgentDescription) *protobufs.AgentRemoteConfig {
	attr := map[string]string{}
	for _, kv := range desc.IdentifyingAttributes {
		attr[kv.Key] = kv.GetValue().GetStringValue()
	}
	workload := attr["k8s.deployment.name"]
	if workload == "" {
		workload = attr["k8s.pod.name"]
	}
	var sdk sdkConfig
	sdk.RemoteResourceAttributes = []keyValue{
		{"k8s.node.name", p.nodeName},
		{"k8s.namespace.name", attr["k8s.namespace.name"]},
		{"service.name", workload},
		{"k8s.pod.name", attr["k8s.pod.name"]},
		{"k8s.container.name", attr["k8s.container.name"]},
		{"k8s.deployment.name", workload},
	}
	sdk.TraceSignal.Enabled = true
	sdk.TraceSignal.DefaultEnabledValue = true
	sdkBody, _ := json.Marshal(sdk)
	files := map[string]*protobufs.AgentConfigFile{
		"SDK":                      {Body: sdkBody, ContentType: "application/json"},
		"InstrumentationLibraries": {Body: []byte("[]"), ContentType: "application/json"},
	}
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	hash := sha256.New()
	for _, k := range keys {
		hash.Write(files[k].Body)
	}
	return &protobufs.AgentRemoteConfig{
		Config:     &protobufs.AgentConfigMap{ConfigMap: files},
		ConfigHash: hash.Sum(nil),
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve POST /v1/opamp on")
	nodeName := flag.String("node-name", "bench-node", "sent to agents as k8s.node.name")
	flag.Parse()

	p := &peer{nodeName: *nodeName, agents: map[string]*agent{}}
	callbacks := types.ConnectionCallbacks{OnMessage: p.onMessage}
	srv := server.New(nil)
	err := srv.Start(server.StartSettings{
		ListenEndpoint: *listen,
		ListenPath:     "/v1/opamp",
		Settings: server.Settings{Callbacks: types.Callbacks{
			OnConnecting: func(*http.Request) types.ConnectionResponse {
				return types.ConnectionResponse{Accept: true, ConnectionCallbacks: callbacks}
			},
		}},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "opamp-go-peer: cannot start: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("opamp-go-peer listening on %s\n", srv.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Stop(ctx)
}
