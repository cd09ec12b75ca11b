package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// sumFiller fills a value of the config types: every leaf set, every
// pointer allocated, every list one item long, except the one change
// named by alter (a leaf given another value, a pointer or list left
// nil, a list left empty). It records the name of every change it could
// have made.
type sumFiller struct {
	t       *testing.T
	alter   string
	changes []string
}

var prefixType = reflect.TypeFor[netip.Prefix]()

func (f *sumFiller) fill(v reflect.Value, path string) {
	changed := func(name string) bool {
		f.changes = append(f.changes, name)
		return f.alter == name
	}
	switch v.Kind() {
	case reflect.Pointer:
		if changed(path + "#nil") {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		f.fill(v.Elem(), path)
	case reflect.Slice:
		nilList, empty := changed(path+"#nil"), changed(path+"#empty")
		switch {
		case nilList:
			return
		case empty:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		f.fill(v.Index(0), path+"[0]")
	case reflect.Struct:
		if v.Type() == prefixType {
			p := netip.MustParsePrefix("10.0.0.0/8")
			if changed(path) {
				p = netip.MustParsePrefix("10.0.0.0/16")
			}
			v.Set(reflect.ValueOf(p))
			return
		}
		for i := range v.NumField() {
			f.fill(v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.String:
		v.SetString(map[bool]string{false: "a", true: "b"}[changed(path)])
	case reflect.Int, reflect.Int64:
		v.SetInt(map[bool]int64{false: 7, true: 8}[changed(path)])
	case reflect.Bool:
		v.SetBool(!changed(path))
	default:
		f.t.Fatalf("%s: kind %s not handled by the test; extend it and sumEncoder", path, v.Kind())
	}
}

// notRouting are the fields that say where or how a table was written;
// Sum leaves them out.
var notRouting = map[string]bool{"Pos": true, "Files": true, "Warnings": true, "Stats": true}

func isNotRouting(path string) bool {
	for seg := range strings.SplitSeq(path, ".") {
		seg, _, _ = strings.Cut(seg, "[")
		seg, _, _ = strings.Cut(seg, "#")
		if notRouting[seg] {
			return true
		}
	}
	return false
}

// TestSumCoversEveryField changes every field of a fully set table, one
// at a time, by reflection: a routing field must change Sum (and
// GlobalSum unless it belongs to a host), a field in notRouting must
// not. A field added to the config types without a line in sum.go
// fails here.
func TestSumCoversEveryField(t *testing.T) {
	build := func(alter string) (*Upstreams, []string) {
		f := &sumFiller{t: t, alter: alter}
		var u Upstreams
		f.fill(reflect.ValueOf(&u).Elem(), "")
		return &u, f.changes
	}
	base, changes := build("")
	sum, global := base.Sum(), base.GlobalSum()
	if len(changes) < 100 {
		t.Fatalf("only %d changes found; the filler is broken", len(changes))
	}
	for _, c := range changes {
		u, _ := build(c)
		inHosts := strings.HasPrefix(c, ".Hosts")
		switch {
		case isNotRouting(c):
			if u.Sum() != sum || u.GlobalSum() != global {
				t.Errorf("changing %s changed the sum; want it left out", c)
			}
		case u.Sum() == sum:
			t.Errorf("changing %s left Sum unchanged; encode it in sum.go", c)
		case inHosts && u.GlobalSum() != global:
			t.Errorf("changing %s changed GlobalSum; want only Sum", c)
		case !inHosts && u.GlobalSum() == global:
			t.Errorf("changing %s left GlobalSum unchanged", c)
		}
	}
}

func TestSumPrefixFamilies(t *testing.T) {
	a := Upstreams{Policy: Policy{Allow: []netip.Prefix{netip.MustParsePrefix("1.2.3.4/32")}}}
	b := Upstreams{Policy: Policy{Allow: []netip.Prefix{netip.MustParsePrefix("::ffff:1.2.3.4/128")}}}
	if a.Sum() == b.Sum() {
		t.Error("an IPv4 prefix and its IPv4-mapped IPv6 form have the same sum")
	}
}

// TestSumIgnoresPlace: the same host read from two files at other lines
// has one sum.
func TestSumIgnoresPlace(t *testing.T) {
	a, err := ParseUpstreams("a.yaml", []byte("upstreams:\n  a.test:\n    paths:\n      \"/\":\n        servers: [\"127.0.0.1:1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseUpstreams("b.yaml", []byte("# moved down\nupstreams:\n\n  a.test:\n    paths: {\"/\": {servers: [\"127.0.0.1:1\"]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Sum() != b.Sum() || a.Hosts[0].Sum() != b.Hosts[0].Sum() {
		t.Errorf("Sum differs for the same table written in two places")
	}
}
