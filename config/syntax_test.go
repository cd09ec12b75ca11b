package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestSyntaxErrorPositions checks that a YAML syntax error is reported
// where it is, at any file size (issue 12: a bad indent on line 12 came
// out at 8:1, an unclosed "[" on the line before it).
func TestSyntaxErrorPositions(t *testing.T) {
	t.Parallel()
	head := "x: 1\ny: 2\nz: 3\nw: 4\nv: 5\nu: 6\nt: 7\nup:\n  a: 1\n  b: 2\n  c: 3\n" // 11 lines
	// big is 2,000 lines (over 16 KiB, where the second parser is not
	// used) ahead of the same errors; BenchmarkSyntaxError has 10,000
	// hosts.
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "k%d: %d\n", i, i)
	}
	big := b.String()
	tests := []struct {
		name, src, pos, msg string
	}{
		{name: "bad indent on line 12", src: head + " d: 4\n  e: 5\n", pos: "12:2", msg: "did not find expected key"},
		{name: "bad indent at the end", src: head + " d: 4\n", pos: "12:2", msg: "did not find expected key"},
		{name: "deeper indent on line 12", src: head + "    d: 4\n  e: 5\n", pos: "12:6", msg: "mapping values are not allowed"},
		{name: "dedent inside a block", src: "up:\n  a:\n    b: 1\n   c: 2\n", pos: "4:4", msg: "did not find expected key"},
		{name: "list item dedented", src: "servers:\n  - \"a\"\n  - \"b\"\n - \"c\"\nx: 1\n", pos: "4:2", msg: "did not find expected key"},
		{name: "key inside a list", src: "a:\n  - x\n  y: 1\n", pos: "3:3", msg: "did not find expected '-' indicator"},
		{name: "second colon", src: "a: 1\nb: c: d\n", pos: "2:5", msg: "mapping values are not allowed"},
		{name: "tab indent", src: "a: 1\nb:\n\tc: 2\n", pos: "3:1", msg: "found character that cannot start any token"},
		{name: "text after a quoted value", src: "a: \"x\" y\nb: 1\n", pos: "1:8", msg: "did not find expected key"},
		{name: "unclosed [", src: "a: 1\nb: [1, 2\nc: 3\n", pos: "2:4", msg: "did not find expected ',' or ']'"},
		{name: "unclosed [ on line 1", src: "b: [1, 2\nc: 3\n", pos: "1:4", msg: "did not find expected ',' or ']'"},
		{name: "unclosed [ then comments", src: "a: 1\nb: [1, 2\n\n\n# x\nc: 3\n", pos: "2:4", msg: "did not find expected ',' or ']'"},
		{name: "unclosed {", src: "a: {x: 1\nb: 2\n", pos: "1:4", msg: "did not find expected ',' or '}'"},
		{name: "unclosed [ then a flow mapping", src: "a:\n  b: [\"x\"\n  c: {d: 1, e: [2]}\n", pos: "2:6", msg: "did not find expected ',' or ']'"},
		{name: "unclosed [ then a path's flow mapping", src: "upstreams:\n  DEFAULT:\n    paths:\n      \"/admin\":\n        servers: [\"127.0.0.1:18201\"\n        authorization: {type: basic, data: [\"u:p\"]}\n", pos: "5:18", msg: "did not find expected ',' or ']'"},
		{name: "two lists without a comma", src: "a: 1\nb: [[1] [2]]\n", pos: "2:4", msg: "did not find expected ',' or ']'"},
		{name: "inner unclosed [", src: "a: {x: [1, 2}\n", pos: "1:8", msg: ""},
		{name: "brackets in a plain value", src: "a: x[1]\nb: [1\nc: 3\n", pos: "2:4", msg: "did not find expected ',' or ']'"},
		{name: "truncated quoted value", src: "a: 1\nb:\n  c: \"abc", pos: "3:10", msg: "found unexpected end of stream"},
		{name: "truncated after [", src: "a: 1\nb:\n  c: [\n", pos: "3:6", msg: ""},
		{name: "truncated in a flow mapping", src: "a: 1\nb:\n  c: {x: 1,\n", pos: "3:6", msg: ""},
		{name: "big: bad indent", src: big + head + " d: 4\n  e: 5\n", pos: "2012:2", msg: "did not find expected key"},
		{name: "big: deeper indent", src: big + head + "    d: 4\n", pos: "2012:6", msg: "mapping values are not allowed"},
		{name: "big: unclosed [", src: big + "a: 1\nb: [1, 2\nc: 3\n", pos: "2002:4", msg: "did not find expected ',' or ']'"},
		{name: "big: truncated", src: big + "a: 1\nb:\n  c: \"abc", pos: "2003:10", msg: "found unexpected end of stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseUpstreams("t.yaml", []byte(tt.src))
			var el ErrorList
			if !errors.As(err, &el) || len(el) != 1 {
				t.Fatalf("ParseUpstreams() error = %v; want one syntax error", err)
			}
			got := el[0].Error()
			if want := "t.yaml:" + tt.pos + ": YAML syntax: " + tt.msg; !strings.HasPrefix(got, want) {
				t.Errorf("ParseUpstreams() error = %q; want prefix %q", got, want)
			}
		})
	}
}
