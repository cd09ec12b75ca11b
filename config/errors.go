package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// FieldError is one problem in a configuration file: where it is, the
// YAML path of the offending key (as "upstreams.app.test.paths./api.servers[1]")
// and a plain message. Its Error method returns
// "file:line:col: path: message"; parts that are unknown are left out.
type FieldError struct {
	// Pos is where the offending key or value appears.
	Pos Pos
	// Path is the YAML path of the key; empty for file-level errors
	// (syntax errors, a file that cannot be read).
	Path string
	// Msg describes the problem.
	Msg string
}

// Error returns "file:line:col: path: message".
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// String returns "file:line:col", "file" or "line:col", depending on what
// is known, and "" when nothing is.
func (p Pos) String() string {
	switch {
	case p.Line > 0 && p.File != "":
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	case p.Line > 0:
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	default:
		return p.File
	}
}

// ErrorList is every problem found in a configuration, sorted by file,
// line and column. Load, ParseMain, ParseUpstreams, LoadUpstreams and the
// Validate methods return a non-empty ErrorList as their error; use
// errors.As to get at the entries.
type ErrorList []*FieldError

// Error returns one FieldError per line.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the entries, so that errors.As finds a *FieldError.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sort orders the list by file, line and column, keeping the order of
// errors at the same position.
func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b *FieldError) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
		)
	})
}

// err returns nil for an empty list and the sorted list otherwise.
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	l.sort()
	return l
}
