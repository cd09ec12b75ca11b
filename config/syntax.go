package config

import (
	"bytes"
	"errors"
	"io"
	"strings"

	goccyparser "github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	yaml "go.yaml.in/yaml/v3"
)

// Finding where a YAML syntax error is. The parser (go.yaml.in/yaml/v3)
// reports, for errors found while parsing (not scanning), the line where
// the enclosing block or flow collection starts, counted from 0: a bad
// indent on line 12 comes out as line 8 or 11, an unclosed "[" as the
// line before it, a truncated file at the start of the last block. The
// rules below find the place itself, in time O(n log n) for n bytes:
//
//   - an unclosed "[" or "{" (the parser names the missing "]" or "}",
//     or the input ends inside it): the bracket;
//   - the input ends inside a construct (a quoted scalar, a node after
//     "key:"): the end of the input, after its last character;
//   - otherwise the first line L such that the input cut after line L
//     fails with an error that is not "the input ended": found by binary
//     search over lines, each step one linear parse. The column is that
//     of the offending ":" for "mapping values are not allowed", else of
//     the line's first character; for inputs up to maxLocateBytes it is
//     goccy/go-yaml's when that parser fails on the same line.

// eofMessages are parser messages that, when the scanner read the whole
// input, mean the input ended inside a construct.
var eofMessages = []string{
	"found unexpected end of stream",
	"did not find expected node content",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"could not find expected ':'",
}

// trialParse parses data with a reader that hands out trialChunk bytes
// per Read, so that the number of bytes consumed when the parser fails
// shows, to within trialChunk bytes, how far its scanner got. It returns
// the error message (without "yaml: " and the line) and the bytes
// consumed; "" when data parses.
func trialParse(data []byte) (msg string, consumed int) {
	r := &byteReader{b: data}
	defer func() {
		if recover() != nil {
			msg, consumed = "panic", r.off
		}
	}()
	dec := yaml.NewDecoder(r)
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return "", r.off
		}
		if err != nil {
			m := strings.TrimPrefix(err.Error(), "yaml: ")
			if l := yamlErrLine.FindStringSubmatch(err.Error()); l != nil {
				m = l[2]
			}
			return m, r.off
		}
	}
}

// trialChunk is the most a byteReader hands out per Read: small enough to
// tell where the scanner stopped, large enough to keep a parse of a
// large file cheap.
const trialChunk = 16

// byteReader reads at most trialChunk bytes per call.
type byteReader struct {
	b   []byte
	off int
}

func (r *byteReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), trialChunk)], r.b[r.off:])
	r.off += n
	return n, nil
}

// endedInside reports whether a trial parse of n bytes failed because the
// input ended.
func endedInside(msg string, consumed, n int) bool {
	if consumed < n {
		return false
	}
	for _, m := range eofMessages {
		if strings.HasPrefix(msg, m) {
			return true
		}
	}
	return false
}

// locateSyntax returns the 1-based line and column of the syntax error
// that msg (the parser's message) reports for data.
func locateSyntax(data []byte, msg string) (line, col int) {
	_, consumed := trialParse(data)
	flow := strings.HasPrefix(msg, "did not find expected ',' or")
	if flow || endedInside(msg, consumed, len(data)) {
		if off := unclosedBracket(data[:min(consumed, len(data))]); off >= 0 {
			return lineCol(data, off)
		}
		if !flow {
			end := len(bytes.TrimRight(data, " \t\r\n"))
			return lineCol(data, end)
		}
	}
	starts := lineStarts(data)
	fails := func(lines int) bool {
		end := len(data)
		if lines < len(starts) {
			end = starts[lines]
		}
		m, c := trialParse(data[:end])
		return m != "" && !endedInside(m, c, end)
	}
	// The smallest number of lines that fail by themselves. The scanner
	// stops a little past the error, so search down from there, in
	// growing steps, then halve: a few parses when the error is where
	// the scanner stopped, O(log n) parses at worst.
	hi, _ := lineCol(data, consumed)
	hi = min(max(hi, 1), len(starts))
	if !fails(hi) {
		hi = len(starts) // the whole input fails
	}
	lo := 1
	for step := 1; hi-step >= 1; step *= 2 {
		if !fails(hi - step) {
			lo = hi - step + 1
			break
		}
		hi -= step
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	line = lo
	text := data[starts[line-1]:]
	if i := bytes.IndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	}
	col = 1 + len(text) - len(bytes.TrimLeft(text, " "))
	if strings.HasPrefix(msg, "mapping values are not allowed") {
		if c := offendingColon(text); c > 0 {
			return line, c
		}
	}
	if c := goccyColumn(data, line); c > 0 {
		col = c
	}
	return line, col
}

// lineStarts returns the offset of each line's first byte.
func lineStarts(data []byte) []int {
	starts := []int{0}
	for i, c := range data {
		if c == '\n' && i+1 < len(data) {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, off int) (int, int) {
	off = min(off, len(data))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	return line, 1 + off - (bytes.LastIndexByte(data[:off], '\n') + 1)
}

// offendingColon returns the 1-based column of the ":" that starts a
// mapping value where none is allowed on a line: the second mapping
// colon ("a: b: c"), else the only one. Quoted text is skipped.
func offendingColon(line []byte) int {
	var cols []int
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' '):
			i = len(line)
		case c == ':' && (i+1 == len(line) || line[i+1] == ' ' || line[i+1] == '\t'):
			cols = append(cols, i+1)
		}
	}
	switch len(cols) {
	case 0:
		return 0
	case 1:
		return cols[0]
	}
	return cols[1]
}

// unclosedBracket returns the offset of the innermost flow collection
// ("[" or "{") still open at the end of data, or -1. Brackets count
// where a node may start (after indentation, ": ", "- ", "? ", or
// inside a flow collection), outside quotes and comments, so that a
// plain scalar such as "a[1]" is not a collection.
func unclosedBracket(data []byte) int {
	var open []int
	var quote byte
	nodeStart := true // a node may start at the next non-blank byte
	// ended: inside a flow collection, a quoted scalar or a nested
	// collection has just ended, so only ",", ":" or a closing bracket
	// may follow. Anything else is where the parser stops ("did not find
	// expected ',' or ']'"): its scanner reads on past it, and a bracket
	// opened there must not be taken for the unclosed one.
	ended := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if quote != 0 {
			switch {
			case quote == '"' && c == '\\':
				i++
			case c == quote:
				if quote == '\'' && i+1 < len(data) && data[i+1] == '\'' {
					i++
					continue
				}
				quote = 0
				nodeStart = false
				ended = len(open) > 0
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r':
			continue
		case '\n':
			nodeStart = true
			continue
		case '#':
			if i == 0 || data[i-1] == ' ' || data[i-1] == '\t' || data[i-1] == '\n' {
				for i < len(data) && data[i] != '\n' {
					i++
				}
				nodeStart = true
				continue
			}
		}
		inFlow := len(open) > 0
		if ended && c != ',' && c != ':' && c != ']' && c != '}' {
			return open[len(open)-1]
		}
		ended = false
		switch {
		case (c == '[' || c == '{') && (nodeStart || inFlow):
			open = append(open, i)
			nodeStart = true
		case (c == ']' || c == '}') && inFlow:
			top := open[len(open)-1]
			if data[top] == '[' != (c == ']') {
				return top // closed by the other kind: this one is unclosed
			}
			open = open[:len(open)-1]
			nodeStart = false
			ended = len(open) > 0
		case c == ',' && inFlow:
			nodeStart = true
		case (c == '"' || c == '\'') && (nodeStart || inFlow):
			quote = c
		case (c == ':' || c == '-' || c == '?') && (i+1 == len(data) || data[i+1] == ' ' || data[i+1] == '\n' || data[i+1] == '\t' || inFlow):
			nodeStart = true
		default:
			nodeStart = false
		}
	}
	if len(open) == 0 {
		return -1
	}
	return open[len(open)-1]
}

// goccyColumn returns the column goccy/go-yaml reports for a syntax error
// on line, or 0; only for inputs up to maxLocateBytes, as that parser's
// time grows with the square of the keys in a mapping.
func goccyColumn(data []byte, line int) (col int) {
	if len(data) > maxLocateBytes {
		return 0
	}
	defer func() {
		if recover() != nil {
			col = 0
		}
	}()
	_, err := goccyparser.ParseBytes(data, 0, goccyparser.AllowDuplicateMapKey())
	var te interface{ GetToken() *token.Token }
	if errors.As(err, &te) {
		if tk := te.GetToken(); tk != nil && tk.Position != nil && tk.Position.Line == line {
			return tk.Position.Column
		}
	}
	return 0
}
