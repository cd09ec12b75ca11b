package config

import (
	"bytes"
	"os"
	"sync"
	"time"
)

// Cache keeps what reading each upstreams file and conf.d/*.yaml file
// gave (hosts with defaults applied and checked, warnings, errors),
// keyed by the file's name and its content, so that a reload parses
// again only the files whose content changed: editing one conf.d file
// of a table spread over many costs one file's parse, not the whole
// table's (issue 16). Every file is still read on every load and
// compared byte for byte with the content its result came from; its
// modification time is never trusted. A result is used only for the
// same name and the same bytes, so errors keep their file:line:col and
// a file that changed is never served from the cache. The Cache holds
// the files' content besides their results.
//
// A Cache keeps the files of its last load only: those no longer read
// (a deleted conf.d file) are dropped. The tables it returns share
// their hosts' memory with it and with each other: treat them as
// read-only, and Clone one before changing it. A Cache is safe for
// concurrent use; its zero value is ready to use. A nil *Cache caches
// nothing: its loads parse every file, like the package functions.
type Cache struct {
	mu    sync.Mutex            // guards files
	files map[string]*fileParse // by file name
}

// fileParse is what reading one file gave. Its fields are never changed
// once it is stored.
type fileParse struct {
	data []byte // the content parsed
	// up is the upstreams file's table before conf.d, with its
	// warnings (nil when it did not parse); hosts and warns are a
	// conf.d file's.
	up    *Upstreams
	hosts []Host
	warns []string
	errs  ErrorList
}

// LoadStats says how a table was read from its files, for the reload
// log. It is zero for a table that was not read from files (the config
// API, discovery). Sum and Digest leave it out.
type LoadStats struct {
	// Files is how many files were read: the upstreams file and each
	// conf.d/*.yaml.
	Files int
	// Parsed is how many of them were parsed; the others' results came
	// from the Cache, their content unchanged.
	Parsed int
	// Parse is the time spent reading, hashing, parsing and checking
	// the files one by one.
	Parse time.Duration
	// Merge is the time spent merging the files' hosts into one table
	// and checking the rules between them.
	Merge time.Duration
}

// Load is the package-level Load through c: the upstreams files whose
// content is unchanged since c's last load are not parsed again.
func (c *Cache) Load(mainPath string) (*Config, error) {
	return load(c, mainPath, os.LookupEnv)
}

// LoadUpstreams is the package-level LoadUpstreams through c.
func (c *Cache) LoadUpstreams(path string) (*Upstreams, error) {
	return loadUpstreams(c, path)
}

// parse returns the result of parse for the file name with content
// data, from the cache when the same name had the same content in the
// last load. fresh reports whether parse ran. data may be reused by the
// caller once parse returns.
func (c *Cache) parse(name string, data []byte, parse func(name string, data []byte) *fileParse) (fp *fileParse, fresh bool) {
	if c != nil {
		c.mu.Lock()
		fp = c.files[name]
		c.mu.Unlock()
		if fp != nil && bytes.Equal(fp.data, data) {
			return fp, false
		}
	}
	data = bytes.Clone(data)
	fp = parse(name, data)
	if c != nil {
		fp.data = data
	}
	return fp, true
}

// keep replaces c's files by those of the load that just read them.
func (c *Cache) keep(files map[string]*fileParse) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.files = files
	c.mu.Unlock()
}
