package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// maxNodeVisits bounds the work of one document, so that aliases that
// expand to each other ("billion laughs") cannot make a small file cost
// unbounded time.
const maxNodeVisits = 1 << 20

// maxLocateBytes bounds the input handed to the second parser that finds
// the column of a syntax error (its cost grows with the square of the
// keys in a mapping).
const maxLocateBytes = 16 << 10

// Node tags, as returned by (*yaml.Node).ShortTag.
const (
	tagStr   = "!!str"
	tagInt   = "!!int"
	tagFloat = "!!float"
	tagBool  = "!!bool"
	tagNull  = "!!null"
	tagMerge = "!!merge"
)

// walker reads one YAML document: it resolves aliases, checks node types
// without coercion and collects every error with its position. It is
// used by one goroutine.
//
// Documents are parsed with go.yaml.in/yaml/v3 into nodes that carry
// line and column; its time is linear in the input (goccy/go-yaml's
// parser, measured at 2.1 s for 8,000 keys and 31 s for 32,000, is used
// only to find the column of a syntax error in small inputs).
type walker struct {
	file    string
	errs    ErrorList
	warns   []string
	visits  int
	over    bool // maxNodeVisits reached; reported once
	seenErr map[FieldError]bool
}

func newWalker(file string) *walker {
	return &walker{file: file}
}

// parse parses data and returns the root node of its only document, or
// nil for an empty document. A syntax error is recorded with its position.
func (w *walker) parse(data []byte) (body *yaml.Node) {
	defer func() {
		// The YAML parser is third-party code fed untrusted input (the
		// config API); a panic there must be an error, not a crash.
		if r := recover(); r != nil {
			w.errs = append(w.errs, &FieldError{Pos: Pos{File: w.file}, Msg: fmt.Sprintf("invalid YAML: %v", r)})
			body = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			w.syntaxError(data, err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		w.errorf(&next, "", "a file holds one YAML document; found more")
		return nil
	case !errors.Is(err, io.EOF):
		w.syntaxError(data, err)
		return nil
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

var (
	yamlErrLine     = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	yamlErrNoAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// syntaxError records a parser error at the place locateSyntax finds
// (syntax.go): the parser's own line is often that of the enclosing
// block.
func (w *walker) syntaxError(data []byte, err error) {
	pos := Pos{File: w.file, Line: 1, Col: 1}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlErrNoAnchor.FindStringSubmatch(err.Error()); m != nil {
		// The parser gives no position here: find the alias.
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			pos.Line = 1 + bytes.Count(data[:i], []byte("\n"))
			pos.Col = 1 + i - (bytes.LastIndexByte(data[:i], '\n') + 1)
		}
		w.errs = append(w.errs, &FieldError{Pos: pos, Msg: "alias *" + m[1] + " refers to no anchor"})
		return
	}
	if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
		msg = m[2]
	}
	if !strings.HasPrefix(msg, "exceeded max depth") {
		pos.Line, pos.Col = locateSyntax(data, msg)
	}
	w.errs = append(w.errs, &FieldError{Pos: pos, Msg: "YAML syntax: " + msg})
}

// pos returns where n starts.
func (w *walker) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: w.file}
	}
	return Pos{File: w.file, Line: n.Line, Col: n.Column}
}

func (w *walker) errorf(n *yaml.Node, path, format string, args ...any) {
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

func (w *walker) warnf(n *yaml.Node, path, format string, args ...any) {
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

// resolve follows aliases to the node that holds the value. It returns
// nil (after recording an error) for an explicit tag, or when the
// document is too expensive to walk.
func (w *walker) resolve(n *yaml.Node, path string) *yaml.Node {
	for range 100 {
		if n == nil {
			return nil
		}
		w.visits++
		if w.visits > maxNodeVisits {
			if !w.over {
				w.over = true
				w.errorf(n, path, "document too complex: more than %d nodes after expanding aliases", maxNodeVisits)
			}
			return nil
		}
		switch {
		case n.Kind == yaml.AliasNode:
			n = n.Alias
		case n.Kind == yaml.DocumentNode && len(n.Content) > 0:
			n = n.Content[0]
		case n.Style&yaml.TaggedStyle != 0:
			w.errorf(n, path, "YAML tag %s is not supported; write the value without a tag (quote it to make it a string)", n.Tag)
			return nil
		default:
			return n
		}
	}
	w.errorf(n, path, "alias chain too long")
	return nil
}

// kind names a node's YAML type for messages.
func kind(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case tagInt:
			return "an integer (" + n.Value + ")"
		case tagFloat:
			return "a number (" + n.Value + ")"
		case tagBool:
			return "a boolean (" + n.Value + ")"
		case tagNull:
			return "null"
		case tagStr:
			if len(n.Value) > 64 {
				return strconv.Quote(n.Value[:60] + "…")
			}
			return strconv.Quote(n.Value)
		}
		return n.ShortTag() + " " + strconv.Quote(n.Value)
	default:
		return "a YAML node of kind " + strconv.Itoa(int(n.Kind))
	}
}

// isScalar reports whether n is a plain scalar of the given tag.
func isScalar(n *yaml.Node, tag string) bool {
	return n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == tag
}

// entry is one key of a mapping, in file order.
type entry struct {
	key  string
	keyN *yaml.Node // the key node, for positions
	val  *yaml.Node // unresolved value
	path string     // YAML path of the key
}

// entries returns the keys of the mapping n (already resolved). Merge keys
// ("<<: *anchor") add the keys of the merged mappings that n does not set
// itself; earlier merged mappings win over later ones. Duplicate keys are
// errors. null is an empty mapping.
func (w *walker) entries(n *yaml.Node, path string) ([]entry, bool) {
	switch {
	case n == nil || isScalar(n, tagNull):
		return nil, true
	case n.Kind == yaml.MappingNode:
		return w.mappingEntries(n, path, 0), true
	default:
		w.errorf(n, path, "want a mapping, got %s", kind(n))
		return nil, false
	}
}

// mappingEntries returns the explicit keys of m followed by the merged
// keys it does not set, each key once, so that nested merges cost no
// more than the keys they name.
func (w *walker) mappingEntries(m *yaml.Node, path string, depth int) []entry {
	var out, merged []entry
	seen := make(map[string]*yaml.Node, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		w.visits++
		k, v := m.Content[i], m.Content[i+1]
		if isScalar(k, tagMerge) {
			merged = append(merged, w.merge(v, path, depth)...)
			continue
		}
		kn := w.resolve(k, path)
		if kn == nil {
			continue
		}
		if kn.Kind != yaml.ScalarNode {
			w.errorf(k, path, "a key must be a plain string, got %s", kind(kn))
			continue
		}
		key := kn.Value
		p := joinPath(path, key)
		if first, dup := seen[key]; dup {
			w.errorf(k, p, "duplicate key %q (first at line %d)", key, first.Line)
			continue
		}
		seen[key] = k
		out = append(out, entry{key: key, keyN: k, val: v, path: p})
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
func (w *walker) merge(v *yaml.Node, path string, depth int) []entry {
	if depth > 20 {
		w.errorf(v, path, "merge keys nested too deeply")
		return nil
	}
	n := w.resolve(v, path)
	switch {
	case n == nil:
		return nil
	case n.Kind == yaml.MappingNode:
		return w.mappingEntries(n, path, depth+1)
	case n.Kind == yaml.SequenceNode:
		var out []entry
		for _, x := range n.Content {
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

// isNull reports whether v is null (a key written without a value, ~ or
// null); such keys are treated as absent.
func (w *walker) isNull(v *yaml.Node) bool {
	for range 100 {
		if v == nil {
			return true
		}
		if v.Kind != yaml.AliasNode {
			break
		}
		v = v.Alias
	}
	return v == nil || isScalar(v, tagNull) && v.Style&yaml.TaggedStyle == 0
}

// str reads a string. Numbers and booleans are not strings: quote them.
func (w *walker) str(v *yaml.Node, path string) (string, bool) {
	n := w.resolve(v, path)
	switch {
	case n == nil:
		return "", false
	case isScalar(n, tagStr):
		return n.Value, true
	case n.Kind == yaml.ScalarNode && n.ShortTag() != tagNull:
		w.errorf(v, path, "want a string, got %s; quote it: %q", kind(n), n.Value)
	default:
		w.errorf(v, path, "want a string, got %s", kind(n))
	}
	return "", false
}

// integer reads a whole number in [lo, hi]. Floats and quoted numbers are
// errors.
func (w *walker) integer(v *yaml.Node, path string, lo, hi int64) (int64, bool) {
	n := w.resolve(v, path)
	var x int64
	switch {
	case n == nil:
		return 0, false
	case isScalar(n, tagInt):
		var err error
		x, err = parseYAMLInt(n.Value)
		if err != nil {
			w.errorf(v, path, "integer %s is out of range", n.Value)
			return 0, false
		}
	case isScalar(n, tagStr):
		if _, err := strconv.ParseFloat(strings.TrimSpace(n.Value), 64); err == nil {
			w.errorf(v, path, "want an integer, got the string %q; remove the quotes", n.Value)
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

// parseYAMLInt reads a YAML 1.2 integer: decimal (leading zeros stay
// decimal, as in YAML 1.2, not octal as in Go), 0x hex, 0o octal, with
// optional sign and '_' separators.
func parseYAMLInt(s string) (int64, error) {
	digits := strings.TrimLeft(s, "+-")
	if digits != "" && strings.Trim(digits, "0123456789_") == "" {
		return strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	}
	return strconv.ParseInt(s, 0, 64)
}

// boolean reads true or false (YAML 1.2: yes, no, on, off are strings).
func (w *walker) boolean(v *yaml.Node, path string) (bool, bool) {
	n := w.resolve(v, path)
	switch {
	case n == nil:
		return false, false
	case isScalar(n, tagBool):
		return strings.EqualFold(n.Value, "true"), true
	default:
		w.errorf(v, path, "want true or false, got %s", kind(n))
		return false, false
	}
}

// duration reads a Go duration string such as "250ms" that is > 0.
func (w *walker) duration(v *yaml.Node, path string) (time.Duration, bool) {
	n := w.resolve(v, path)
	var s string
	switch {
	case n == nil:
		return 0, false
	case isScalar(n, tagStr):
		s = n.Value
	case isScalar(n, tagInt), isScalar(n, tagFloat):
		w.errorf(v, path, "want a duration with a unit such as \"%ss\" or \"250ms\", got %s", n.Value, kind(n))
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

// list returns the items of a sequence (null is empty).
func (w *walker) list(v *yaml.Node, path string) ([]*yaml.Node, bool) {
	n := w.resolve(v, path)
	switch {
	case n == nil:
		return nil, false
	case isScalar(n, tagNull):
		return nil, true
	case n.Kind == yaml.SequenceNode:
		return n.Content, true
	default:
		w.errorf(v, path, "want a list, got %s", kind(n))
		return nil, false
	}
}

// strList reads a list of strings.
func (w *walker) strList(v *yaml.Node, path string) ([]string, bool) {
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
