package discovery

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/aralez-go/aralez/config"
)

// Merge returns the routing table that a discovery provider serves: the
// file-defined table file (its globals, its Consul/Kubernetes blocks and
// its hosts) with the discovered hosts added. The rules are:
//
//   - A discovered host that the file does not define is appended after
//     the file's hosts, in the order of discovered.
//   - A host defined in both keeps the file's host-level policy and gets
//     the union of the paths: the file's paths first, in file order, then
//     the discovered paths whose prefix the file does not define. On a
//     conflict (same host, same prefix, whatever the match kind) the
//     file's path wins and the discovered one is dropped, so a
//     hand-written entry can pin or override a discovered service.
//   - Within discovered, the first entry for a host+prefix+match kind
//     wins; later duplicates are dropped (an exact and a prefix entry for
//     one path both stay), and later entries for an already seen host add
//     their paths to it.
//
// Merge never changes file or discovered. The result is a new value but
// shares the unchanged parts (hosts that get no discovered path, server
// lists, policies) with its inputs, so none of the three may be changed
// afterwards. A nil file is read as an empty table. It allocates; it is
// meant for the discovery goroutines, not the request path. It is safe
// for concurrent use on values nobody changes.
func Merge(file *config.Upstreams, discovered []config.Host) *config.Upstreams {
	out := &config.Upstreams{}
	if file != nil {
		*out = *file
	}
	if len(discovered) == 0 {
		return out
	}
	hosts := make([]config.Host, len(out.Hosts), len(out.Hosts)+len(discovered))
	copy(hosts, out.Hosts)
	// owned marks hosts whose Paths slice is already a private copy, so
	// appending to it cannot write into file's backing array; fileN is
	// how many of a host's paths come from the file.
	owned := make([]bool, len(hosts), cap(hosts))
	fileN := make([]int, len(hosts), cap(hosts))
	index := make(map[string]int, cap(hosts))
	for i := range hosts {
		fileN[i] = len(hosts[i].Paths)
		if _, dup := index[hosts[i].Name]; !dup {
			index[hosts[i].Name] = i
		}
	}
	for _, d := range discovered {
		i, ok := index[d.Name]
		if !ok {
			h := d
			h.Paths = nil
			hosts = append(hosts, h)
			owned = append(owned, true)
			fileN = append(fileN, 0)
			i = len(hosts) - 1
			index[d.Name] = i
		}
		h := &hosts[i]
		for _, p := range d.Paths {
			if hasPath(h.Paths[:fileN[i]], p.Prefix, "", false) || hasPath(h.Paths[fileN[i]:], p.Prefix, p.Match, true) {
				continue
			}
			if !owned[i] {
				h.Paths = slices.Clip(slices.Clone(h.Paths))
				owned[i] = true
			}
			h.Paths = append(h.Paths, p)
		}
	}
	out.Hosts = hosts
	return out
}

// hasPath reports whether paths holds an entry for prefix, of match
// kind m when byKind is set, else of any kind.
func hasPath(paths []config.Path, prefix string, m config.PathMatch, byKind bool) bool {
	for i := range paths {
		if paths[i].Prefix == prefix && (!byKind || paths[i].Match == m) {
			return true
		}
	}
	return false
}

// serviceHosts groups discovered path entries by host in the order the
// services are configured. It is shared by the Consul and Kubernetes
// sources: entries[i] belongs to host names[i].
func serviceHosts(names []string, entries []config.Path) []config.Host {
	var hosts []config.Host
	for i, p := range entries {
		j := slices.IndexFunc(hosts, func(h config.Host) bool { return h.Name == names[i] })
		if j < 0 {
			hosts = append(hosts, config.Host{Name: names[i], Pos: p.Pos})
			j = len(hosts) - 1
		}
		hosts[j].Paths = append(hosts[j].Paths, p)
	}
	return hosts
}

// servicePath builds the path entry of one discovered service. servers
// may be empty (no healthy instance): the path is kept so that the host
// answers 503 rather than falling through to a shorter prefix.
func servicePath(prefix string, pol config.Policy, redirect string, servers []config.Server, pos config.Pos) config.Path {
	if prefix == "" {
		prefix = config.DefaultPath
	}
	return config.Path{
		Prefix:      prefix,
		Servers:     servers,
		Policy:      pol,
		RedirectTo:  redirect,
		LoadBalance: config.DefaultLoadBalance,
		Pos:         pos,
	}
}

// emitter sends a discovery source's merged tables: Merge of its
// file-defined table and what it discovered, skipping a discovered set
// whose Digest did not change unless forced (after SetBase).
type emitter struct {
	source string
	base   *baseTable
	out    chan<- Update
	last   string
	// force is set by a SetBase wake-up that came while the source
	// could not send yet; the next send goes out even if unchanged.
	force bool
}

// send emits the table for discovered unless it is unchanged and
// neither force nor an earlier forced wake-up asks for it. It reports
// whether ctx is still live.
func (e *emitter) send(ctx context.Context, discovered []config.Host, force bool) bool {
	e.force = e.force || force
	d := Digest(&config.Upstreams{Hosts: discovered})
	if d == e.last && !e.force {
		return true
	}
	e.last, e.force = d, false
	select {
	case e.out <- Update{Source: e.source, Upstreams: Merge(e.base.p.Load(), discovered)}:
		return true
	case <-ctx.Done():
		return false
	}
}

// baseTable holds a discovery source's file-defined table. set swaps it
// and wakes the source's Run loop so that it emits the merged table
// again. It must not be copied.
type baseTable struct {
	_    noCopy
	p    atomic.Pointer[config.Upstreams]
	wake chan struct{} // buffered, one pending wake-up
}

func (b *baseTable) init(up *config.Upstreams) {
	b.p.Store(up)
	b.wake = make(chan struct{}, 1)
}

func (b *baseTable) set(up *config.Upstreams) {
	b.p.Store(up)
	select {
	case b.wake <- struct{}{}:
	default:
	}
}
