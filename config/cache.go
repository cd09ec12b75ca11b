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
//
// Loads that run at the same time parse a file once: a load that finds
// the same name with the same content being parsed by another waits for
// that parse and takes its result. The file watcher and SIGHUP often
// load the same edit together, and two parses of a 10,000-host file at
// once would each take twice as long (issue 16).
type Cache struct {
	mu       sync.Mutex            // guards files and parsing
	files    map[string]*fileParse // by file name
	parsing  map[string]*inflight  // by file name: the parses under way
	waitHook func()                // tests: called when a load starts waiting
}

// inflight is a parse under way: data is its content; fp is set before
// done is closed.
type inflight struct {
	data []byte
	done chan struct{}
	fp   *fileParse
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
	if c == nil {
		return parse(name, bytes.Clone(data)), true
	}
	c.mu.Lock()
	if fp = c.files[name]; fp != nil && bytes.Equal(fp.data, data) {
		c.mu.Unlock()
		return fp, false
	}
	if in := c.parsing[name]; in != nil && bytes.Equal(in.data, data) {
		hook := c.waitHook
		c.mu.Unlock()
		if hook != nil {
			hook()
		}
		<-in.done
		if in.fp != nil {
			return in.fp, false
		}
		// The other parse panicked; this one parses for itself.
		return c.parseNow(name, bytes.Clone(data), parse, nil), true
	}
	in := &inflight{data: bytes.Clone(data), done: make(chan struct{})}
	if c.parsing == nil {
		c.parsing = make(map[string]*inflight)
	}
	c.parsing[name] = in
	c.mu.Unlock()
	return c.parseNow(name, in.data, parse, in), true
}

// parseNow parses data, which it keeps, and hands the result to the
// loads waiting on in (nil: none can).
func (c *Cache) parseNow(name string, data []byte, parse func(name string, data []byte) *fileParse, in *inflight) *fileParse {
	if in != nil {
		defer func() {
			c.mu.Lock()
			if c.parsing[name] == in {
				delete(c.parsing, name)
			}
			c.mu.Unlock()
			close(in.done)
		}()
	}
	fp := parse(name, data)
	fp.data = data
	if in != nil {
		in.fp = fp
	}
	return fp
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
