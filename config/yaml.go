package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// maxNodeVisits bounds the work of one document, so that aliases that
// expand to each other ("billion laughs") cannot make a small file cost
// unbounded time.
const maxNodeVisits = 1 << 20

// walker reads one YAML document: it resolves anchors and aliases,
// checks node types without coercion and collects every error with its
// position. It is used by one goroutine.
type walker struct {
	file    string
	errs    ErrorList
	warns   []string
	anchors map[string]ast.Node
	visits  int
	over    bool // maxNodeVisits reached; reported once
	seenErr map[FieldError]bool
}

func newWalker(file string) *walker {
	return &walker{file: file, anchors: make(map[string]ast.Node)}
}

// parse parses data and returns the body of its only document, or nil
// for an empty document. A syntax error is recorded with its position.
func (w *walker) parse(data []byte) (body ast.Node) {
	defer func() {
		// The YAML parser is third-party code fed untrusted input (the
		// config API); a panic there must be an error, not a crash.
		if r := recover(); r != nil {
			w.errs = append(w.errs, &FieldError{Pos: Pos{File: w.file}, Msg: fmt.Sprintf("invalid YAML: %v", r)})
			body = nil
		}
	}()
	f, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		w.syntaxError(err)
		return nil
	}
	var docs []*ast.DocumentNode
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		return nil
	}
	if len(docs) > 1 {
		w.errorf(docs[1].Body, "", "a file holds one YAML document; found %d", len(docs))
		return nil
	}
	w.collectAnchors(docs[0].Body, 0)
	return docs[0].Body
}

// syntaxError records a YAML parser error at its token's position.
func (w *walker) syntaxError(err error) {
	msg := err.Error()
	pos := Pos{File: w.file}
	type tokenError interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if te, ok := err.(tokenError); ok {
		msg = te.GetMessage()
		if tk := te.GetToken(); tk != nil && tk.Position != nil {
			pos.Line, pos.Col = tk.Position.Line, tk.Position.Column
		}
	}
	w.errs = append(w.errs, &FieldError{Pos: pos, Msg: "YAML syntax: " + msg})
}

// collectAnchors records every anchor of the document, so that an alias
// resolves even when the walk skips the key that defined its anchor.
func (w *walker) collectAnchors(n ast.Node, depth int) {
	if n == nil || depth > 1000 {
		return
	}
	switch v := n.(type) {
	case *ast.AnchorNode:
		if v.Name != nil {
			w.anchors[v.Name.GetToken().Value] = v.Value
		}
		w.collectAnchors(v.Value, depth+1)
	case *ast.MappingNode:
		for _, mv := range v.Values {
			w.collectAnchors(mv.Key, depth+1)
			w.collectAnchors(mv.Value, depth+1)
		}
	case *ast.MappingValueNode:
		w.collectAnchors(v.Key, depth+1)
		w.collectAnchors(v.Value, depth+1)
	case *ast.MappingKeyNode:
		w.collectAnchors(v.Value, depth+1)
	case *ast.SequenceNode:
		for _, x := range v.Values {
			w.collectAnchors(x, depth+1)
		}
	case *ast.TagNode:
		w.collectAnchors(v.Value, depth+1)
	}
}

// pos returns where n starts. A block mapping's own token is its first
// colon, so the first key's position is used instead.
func (w *walker) pos(n ast.Node) Pos {
	if m, ok := n.(*ast.MappingNode); ok && !m.IsFlowStyle && len(m.Values) > 0 {
		n = m.Values[0].Key
	}
	if n == nil {
		return Pos{File: w.file}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return Pos{File: w.file}
	}
	return Pos{File: w.file, Line: tk.Position.Line, Col: tk.Position.Column}
}

func (w *walker) errorf(n ast.Node, path, format string, args ...any) {
	w.errorAt(w.pos(n), path, format, args...)
}

// errorAt records an error once: content under an anchor that is used
// several times under the same path would otherwise repeat it.
func (w *walker) errorAt(p Pos, path, format string, args ...any) {
	e := &FieldError{Pos: p, Path: path, Msg: fmt.Sprintf(format, args...)}
	if w.seenErr == nil {
		w.seenErr = make(map[FieldError]bool)
	}
	if w.seenErr[*e] {
		return
	}
	w.seenErr[*e] = true
	w.errs = append(w.errs, e)
}

func (w *walker) warnf(n ast.Node, path, format string, args ...any) {
	var b strings.Builder
	if p := w.pos(n).String(); p != "" {
		b.WriteString(p)
		b.WriteString(": ")
	}
	if path != "" {
		b.WriteString(path)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, format, args...)
	w.warns = append(w.warns, b.String())
}

// resolve follows anchors and aliases to the node that holds the value.
// It returns nil (after recording an error) for an unknown alias, a tag,
// or when the document is too expensive to walk.
func (w *walker) resolve(n ast.Node, path string) ast.Node {
	for range 100 {
		w.visits++
		if w.visits > maxNodeVisits {
			if !w.over {
				w.over = true
				w.errorf(n, path, "document too complex: more than %d nodes after expanding aliases", maxNodeVisits)
			}
			return nil
		}
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			name := ""
			if v.Value != nil {
				name = v.Value.GetToken().Value
			}
			t, ok := w.anchors[name]
			if !ok {
				w.errorf(n, path, "alias *%s refers to no anchor", name)
				return nil
			}
			n = t
		case *ast.TagNode:
			w.errorf(n, path, "YAML tag %s is not supported; write the value without a tag (quote it to make it a string)", v.Start.Value)
			return nil
		case *ast.MappingKeyNode:
			n = v.Value
		default:
			return n
		}
	}
	w.errorf(n, path, "alias chain too long")
	return nil
}

// kind names a node's YAML type for messages.
func kind(n ast.Node) string {
	switch v := n.(type) {
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.IntegerNode:
		return "an integer (" + v.GetToken().Value + ")"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number (" + v.GetToken().Value + ")"
	case *ast.BoolNode:
		return "a boolean (" + v.GetToken().Value + ")"
	case *ast.NullNode:
		return "null"
	case *ast.StringNode:
		return strconv.Quote(v.Value)
	case *ast.LiteralNode:
		return "a block string"
	case nil:
		return "nothing"
	default:
		return n.Type().String()
	}
}

// entry is one key of a mapping, in file order.
type entry struct {
	key  string
	keyN ast.Node // the key node, for positions
	val  ast.Node // unresolved value
	path string   // YAML path of the key
}

// entries returns the keys of the mapping n (already resolved). Merge keys
// ("<<: *anchor") add the keys of the merged mappings that n does not set
// itself; earlier merged mappings win over later ones. Duplicate keys are
// errors. null is an empty mapping.
func (w *walker) entries(n ast.Node, path string) ([]entry, bool) {
	switch m := n.(type) {
	case nil, *ast.NullNode:
		return nil, true
	case *ast.MappingNode:
		return w.mappingEntries(m, path, 0), true
	default:
		w.errorf(n, path, "want a mapping, got %s", kind(n))
		return nil, false
	}
}

// mappingEntries returns the explicit keys of m followed by the merged
// keys it does not set, each key once, so that nested merges cost no
// more than the keys they name.
func (w *walker) mappingEntries(m *ast.MappingNode, path string, depth int) []entry {
	var out, merged []entry
	seen := make(map[string]ast.Node, len(m.Values))
	for _, mv := range m.Values {
		w.visits++
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			merged = append(merged, w.merge(mv.Value, path, depth)...)
			continue
		}
		kn := w.resolve(mv.Key, path)
		if kn == nil {
			continue
		}
		var key string
		switch k := kn.(type) {
		case *ast.StringNode:
			key = k.Value
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
			key = k.GetToken().Value
		default:
			w.errorf(mv.Key, path, "a key must be a plain string, got %s", kind(kn))
			continue
		}
		p := joinPath(path, key)
		if first, dup := seen[key]; dup {
			w.errorf(mv.Key, p, "duplicate key %q (first at line %d)", key, w.pos(first).Line)
			continue
		}
		seen[key] = mv.Key
		out = append(out, entry{key: key, keyN: mv.Key, val: mv.Value, path: p})
	}
	for _, e := range merged {
		if _, ok := seen[e.key]; !ok {
			seen[e.key] = e.keyN
			out = append(out, e)
		}
	}
	return out
}

// merge returns the keys of a "<<" value: a mapping or a list of them.
func (w *walker) merge(v ast.Node, path string, depth int) []entry {
	if depth > 20 {
		w.errorf(v, path, "merge keys nested too deeply")
		return nil
	}
	n := w.resolve(v, path)
	switch t := n.(type) {
	case nil:
		return nil
	case *ast.MappingNode:
		return w.mappingEntries(t, path, depth+1)
	case *ast.SequenceNode:
		var out []entry
		for _, x := range t.Values {
			out = append(out, w.merge(x, path, depth+1)...)
		}
		return out
	default:
		w.errorf(v, path, "merge key <<: want a mapping or an alias of one, got %s", kind(n))
		return nil
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// isNull reports whether v resolves to null (a key written without a
// value); such keys are treated as absent.
func (w *walker) isNull(v ast.Node) bool {
	switch v.(type) {
	case nil, *ast.NullNode:
		return true
	}
	if a, ok := v.(*ast.AliasNode); ok && a.Value != nil {
		if _, null := w.anchors[a.Value.GetToken().Value].(*ast.NullNode); null {
			return true
		}
	}
	return false
}

// str reads a string. Numbers and booleans are not strings: quote them.
func (w *walker) str(v ast.Node, path string) (string, bool) {
	n := w.resolve(v, path)
	switch t := n.(type) {
	case nil:
		return "", false
	case *ast.StringNode:
		return t.Value, true
	case *ast.LiteralNode:
		if t.Value != nil {
			return t.Value.Value, true
		}
		return "", true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		w.errorf(v, path, "want a string, got %s; quote it: %q", kind(n), t.GetToken().Value)
	default:
		w.errorf(v, path, "want a string, got %s", kind(n))
	}
	return "", false
}

// integer reads a whole number in [lo, hi]. Floats and quoted numbers are
// errors.
func (w *walker) integer(v ast.Node, path string, lo, hi int64) (int64, bool) {
	n := w.resolve(v, path)
	var x int64
	switch t := n.(type) {
	case nil:
		return 0, false
	case *ast.IntegerNode:
		switch iv := t.Value.(type) {
		case int64:
			x = iv
		case uint64:
			if iv > math.MaxInt64 {
				w.errorf(v, path, "%s is out of range", t.GetToken().Value)
				return 0, false
			}
			x = int64(iv)
		default:
			w.errorf(v, path, "want an integer, got %s", kind(n))
			return 0, false
		}
	case *ast.StringNode:
		if _, err := strconv.ParseFloat(strings.TrimSpace(t.Value), 64); err == nil {
			w.errorf(v, path, "want an integer, got the string %q; remove the quotes", t.Value)
		} else {
			w.errorf(v, path, "want an integer, got %s", kind(n))
		}
		return 0, false
	default:
		w.errorf(v, path, "want an integer, got %s", kind(n))
		return 0, false
	}
	switch {
	case x < lo && lo == 1:
		w.errorf(v, path, "must be a positive integer, got %d", x)
		return 0, false
	case x < lo:
		w.errorf(v, path, "must be at least %d, got %d", lo, x)
		return 0, false
	case x > hi:
		w.errorf(v, path, "must be at most %d, got %d", hi, x)
		return 0, false
	}
	return x, true
}

// boolean reads true or false (YAML 1.2: yes, no, on, off are strings).
func (w *walker) boolean(v ast.Node, path string) (bool, bool) {
	n := w.resolve(v, path)
	switch t := n.(type) {
	case nil:
		return false, false
	case *ast.BoolNode:
		return t.Value, true
	default:
		w.errorf(v, path, "want true or false, got %s", kind(n))
		return false, false
	}
}

// duration reads a Go duration string such as "250ms" that is > 0.
func (w *walker) duration(v ast.Node, path string) (time.Duration, bool) {
	n := w.resolve(v, path)
	var s string
	switch t := n.(type) {
	case nil:
		return 0, false
	case *ast.StringNode:
		s = t.Value
	case *ast.IntegerNode, *ast.FloatNode:
		w.errorf(v, path, "want a duration with a unit such as \"%ss\" or \"250ms\", got %s", t.GetToken().Value, kind(n))
		return 0, false
	default:
		w.errorf(v, path, "want a duration such as \"250ms\" or \"5s\", got %s", kind(n))
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		w.errorf(v, path, "invalid duration %q: want a number with a unit (ms, s, m, h), such as \"250ms\"", s)
		return 0, false
	}
	if d <= 0 {
		w.errorf(v, path, "duration must be greater than zero, got %q", s)
		return 0, false
	}
	return d, true
}

// list returns the items of a sequence (null is empty). Each item comes
// with its path "path[i]".
func (w *walker) list(v ast.Node, path string) ([]ast.Node, bool) {
	n := w.resolve(v, path)
	switch t := n.(type) {
	case nil:
		return nil, false
	case *ast.NullNode:
		return nil, true
	case *ast.SequenceNode:
		return t.Values, true
	default:
		w.errorf(v, path, "want a list, got %s", kind(n))
		return nil, false
	}
}

// strList reads a list of strings.
func (w *walker) strList(v ast.Node, path string) ([]string, bool) {
	items, ok := w.list(v, path)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(items))
	good := true
	for i, it := range items {
		s, ok := w.str(it, indexPath(path, i))
		if !ok {
			good = false
			continue
		}
		out = append(out, s)
	}
	return out, good
}

// unknownKey records an unknown key, suggesting the closest known one.
func (w *walker) unknownKey(e entry, known []string) {
	if s := suggest(e.key, known); s != "" {
		w.errorf(e.keyN, e.path, "unknown key %q; did you mean %q?", e.key, s)
		return
	}
	w.errorf(e.keyN, e.path, "unknown key %q", e.key)
}

// suggest returns the known key closest to key, or "" when none is close.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	k := strings.ToLower(key)
	for _, c := range known {
		d := editDistance(k, strings.ToLower(c))
		if d < bestD && d <= max(1, len(c)/3) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
