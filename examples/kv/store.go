//go:build linux

package main

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"io"
	"strconv"
	"sync"

	"github.com/netcore-dev/netcore/examples/kv/kvproto"
)

// Store is the key space: a map from key to value, split into shards each
// behind its own lock, so that connections on different event loops rarely
// wait for each other. Every method is safe for concurrent use.
type Store struct {
	seed   maphash.Seed
	shards [storeShards]shard
}

// storeShards is a power of two above the core count of the machines this
// runs on.
const storeShards = 32

type shard struct {
	mu sync.RWMutex
	m  map[string]*entry
}

// entry holds a value behind a pointer, so that set of an existing key
// finds it with a lookup that does not allocate and rewrites it in place.
type entry struct{ val []byte }

// NewStore returns an empty Store.
func NewStore() *Store {
	s := &Store{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[string]*entry)
	}
	return s
}

func (s *Store) shard(key []byte) *shard {
	return &s.shards[maphash.Bytes(s.seed, key)&(storeShards-1)]
}

// The reply payloads that carry no data, and the status that starts get's
// reply before the value: written as they are, so a reply costs no
// allocation.
var (
	replyOK  = kvproto.AppendStatus(nil, kvproto.OK)
	replyNX  = kvproto.AppendStatus(nil, kvproto.NX)
	statusOK = replyOK
)

// Exec runs the command in args (a parsed request) and writes its reply
// payload, status then data, to w in one or two Write calls. It returns
// the first error of w.Write.
//
// The commands, by their first string compared without regard to ASCII
// case, are the book's:
//
//	get key        OK and the value, or NX if key is not set
//	set key value  OK; key now holds a copy of value
//	del key        OK, whether or not key was set (as the book's do_del)
//
// Anything else is answered ERR with a message saying what was wrong
// (quoting at most 64 bytes of the command): no strings at all, an unknown
// command, or the wrong number of strings for a known one.
//
// get writes the value to w while holding its shard's read lock (set
// rewrites values in place), so w.Write must not block; a LoopConn's
// buffers and a byte slice do not. get, set of an existing key with a value
// that fits its buffer well, and del of a missing key allocate nothing.
func (s *Store) Exec(w io.Writer, args [][]byte) error {
	if len(args) == 0 {
		return writeErr(w, "empty request: no command")
	}
	cmd := lookup(args[0])
	if cmd == nil {
		return writeErr(w, fmt.Sprintf("unknown command %s: want get, set or del", quote(args[0])))
	}
	if len(args) != cmd.strings {
		return writeErr(w, fmt.Sprintf("%s takes %d strings (%s), got %d", quote(args[0]), cmd.strings, cmd.usage, len(args)))
	}
	key := args[1]
	sh := s.shard(key)
	switch cmd.name {
	case "set":
		sh.mu.Lock()
		if e := sh.m[string(key)]; e != nil {
			e.val = reuse(e.val, args[2])
		} else {
			sh.m[string(key)] = &entry{val: bytes.Clone(args[2])}
		}
		sh.mu.Unlock()
		_, err := w.Write(replyOK)
		return err
	case "del":
		sh.mu.Lock()
		delete(sh.m, string(key))
		sh.mu.Unlock()
		_, err := w.Write(replyOK)
		return err
	}
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	e := sh.m[string(key)]
	if e == nil {
		_, err := w.Write(replyNX)
		return err
	}
	if _, err := w.Write(statusOK); err != nil {
		return err
	}
	_, err := w.Write(e.val)
	return err
}

// command describes one of the commands Exec runs.
type command struct {
	name    string // in lower case
	strings int    // the request's strings, the name included
	usage   string
}

var commands = [...]command{
	{"get", 2, "get key"},
	{"set", 3, "set key value"},
	{"del", 2, "del key"},
}

// lookup returns the command named name, compared without regard to ASCII
// case, or nil.
func lookup(name []byte) *command {
	for i := range commands {
		if bytes.EqualFold(name, []byte(commands[i].name)) {
			return &commands[i]
		}
	}
	return nil
}

// reuse returns val copied into old's buffer if it fits without wasting
// more than half of it, else a new copy.
func reuse(old, val []byte) []byte {
	if cap(old) >= len(val) && cap(old) <= 2*len(val)+64 {
		return append(old[:0], val...)
	}
	return bytes.Clone(val)
}

// writeErr writes the ERR reply carrying msg.
func writeErr(w io.Writer, msg string) error {
	_, err := w.Write(kvproto.AppendReply(nil, kvproto.ERR, []byte(msg)))
	return err
}

// maxQuoted is how many bytes of a client's string an error message
// quotes.
const maxQuoted = 64

// quote returns b in Go's double-quoted ASCII form, cut to maxQuoted bytes
// with "..." after the closing quote if it was longer.
func quote(b []byte) string {
	if len(b) > maxQuoted {
		return strconv.QuoteToASCII(string(b[:maxQuoted])) + "..."
	}
	return strconv.QuoteToASCII(string(b))
}
