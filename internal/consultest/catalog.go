package consultest

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/hashicorp/consul/api"
)

// Instance is one registered instance of a service, with one health
// check (the service check).
type Instance struct {
	// ID is the service instance ID. Empty means the service name
	// followed by the instance's index.
	ID string
	// Address is the service address; empty means the node's.
	Address string
	// Port is the service port.
	Port int
	// NodeAddress is the node's address. Empty means 10.9.9.<index+1>.
	NodeAddress string
	// Tags and Meta are the service's tags and metadata.
	Tags []string
	Meta map[string]string
	// Weight is Weights.Passing. Zero means 1.
	Weight int
	// Status is the check's status: api.HealthPassing (the default when
	// empty), api.HealthWarning or api.HealthCritical.
	Status string
}

// SetInstances replaces the instances of service name (none removes the
// service, as deregistering its last instance does) and wakes held
// queries.
func (s *Server) SetInstances(name string, instances ...Instance) {
	ins := slices.Clone(instances)
	for i := range ins {
		if ins[i].ID == "" {
			ins[i].ID = name + strconv.Itoa(i)
		}
		if ins[i].NodeAddress == "" {
			ins[i].NodeAddress = "10.9.9." + strconv.Itoa(i+1)
		}
		if ins[i].Status == "" {
			ins[i].Status = api.HealthPassing
		}
		if ins[i].Weight == 0 {
			ins[i].Weight = 1
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ins) == 0 {
		delete(s.services, name)
	} else {
		s.services[name] = ins
	}
	s.bumpLocked()
}

// SetCheck sets the check status of the instance of service name with
// the given ID and wakes held queries. It reports whether the instance
// exists.
func (s *Server) SetCheck(name, id, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ins := slices.Clone(s.services[name])
	i := slices.IndexFunc(ins, func(in Instance) bool { return in.ID == id })
	if i < 0 {
		return false
	}
	ins[i].Status = status
	s.services[name] = ins
	s.bumpLocked()
	return true
}

// health answers GET /v1/health/service/{name}: one entry per instance
// with its node, service and check; ?passing keeps the instances whose
// check passes.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	_, passing := r.URL.Query()["passing"]
	s.blocking(w, r, func() any {
		es := []*api.ServiceEntry{}
		for i, in := range s.services[name] {
			if passing && in.Status != api.HealthPassing {
				continue
			}
			node := "node" + strconv.Itoa(i)
			es = append(es, &api.ServiceEntry{
				Node: &api.Node{Node: node, Address: in.NodeAddress},
				Service: &api.AgentService{
					ID: in.ID, Service: name, Address: in.Address, Port: in.Port,
					Tags: slices.Clone(in.Tags), Meta: in.Meta,
					Weights: api.AgentWeights{Passing: in.Weight, Warning: 1},
				},
				Checks: api.HealthChecks{{
					Node: node, CheckID: "service:" + in.ID, Name: "service check",
					Status: in.Status, ServiceID: in.ID, ServiceName: name,
				}},
			})
		}
		return es
	})
}

// catalogServices answers GET /v1/catalog/services: every service with
// an instance, mapped to the union of its instances' tags, sorted.
func (s *Server) catalogServices(w http.ResponseWriter, r *http.Request) {
	s.blocking(w, r, func() any {
		out := make(map[string][]string, len(s.services))
		for name, ins := range s.services {
			tags := []string{}
			for _, in := range ins {
				tags = append(tags, in.Tags...)
			}
			slices.Sort(tags)
			out[name] = slices.Compact(tags)
		}
		return out
	})
}
