// Package config parses and validates aralez's configuration: main.yaml
// (process settings) and upstreams.yaml plus conf.d/*.yaml (the routing
// table), in Aralez's format.
//
// The package is plain data: it starts no goroutines and touches no
// network. Parsing walks the YAML AST so that every error carries
// file:line:col and the YAML path of the offending key; all errors of a
// file are collected, not only the first.
package config
