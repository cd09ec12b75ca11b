package discovery

import (
	"strconv"
	"testing"

	"github.com/hashicorp/consul/api"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/aralez-go/aralez/config"
)

// benchTables returns a file table of n hosts and n discovered hosts, half
// of them shared with the file.
func benchTables(n int) (*config.Upstreams, []config.Host) {
	file := &config.Upstreams{}
	var disc []config.Host
	for i := range n {
		file.Hosts = append(file.Hosts, host("f"+strconv.Itoa(i)+".example.com", "/=127.0.0.1:1", "/static=127.0.0.1:2"))
		name := "d" + strconv.Itoa(i) + ".example.com"
		if i%2 == 0 {
			name = "f" + strconv.Itoa(i) + ".example.com"
		}
		disc = append(disc, host(name, "/=127.0.0.1:3", "/api=127.0.0.1:4"))
	}
	return file, disc
}

// BenchmarkMerge measures one merge of 1,000 file hosts with 1,000
// discovered hosts: the work of one discovery change.
func BenchmarkMerge(b *testing.B) {
	file, disc := benchTables(1000)
	b.ReportAllocs()
	for b.Loop() {
		Merge(file, disc)
	}
}

// BenchmarkConsulServers maps 100 Consul instances to servers.
func BenchmarkConsulServers(b *testing.B) {
	entries := make([]*api.ServiceEntry, 100)
	for i := range entries {
		entries[i] = &api.ServiceEntry{Node: &api.Node{Address: "10.0.0.1"}, Service: &api.AgentService{Address: "10.1.0." + strconv.Itoa(i), Port: 8080}}
	}
	b.ReportAllocs()
	for b.Loop() {
		consulServers(entries)
	}
}

// BenchmarkSliceServers maps one EndpointSlice of 100 endpoints.
func BenchmarkSliceServers(b *testing.B) {
	addrs := make([]string, 100)
	for i := range addrs {
		addrs[i] = "10.1.0." + strconv.Itoa(i)
	}
	eps := []*discoveryv1.EndpointSlice{slice("default", "web", "web", map[string]int32{"http": 8080}, addrs...)}
	b.ReportAllocs()
	for b.Loop() {
		sliceServers(eps, "")
	}
}
