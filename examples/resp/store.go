//go:build linux

package main

import (
	"bytes"
	"hash/maphash"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
)

// Store is the in-memory key space: a map split into shards, each behind
// its own lock, so that connections served on different goroutines or
// threads (Server mode, or several event loops) rarely wait for each other.
// Every method is safe for concurrent use.
type Store struct {
	ids    atomic.Int64 // the last Session's number (CLIENT ID)
	seed   maphash.Seed
	shards [storeShards]shard
}

// storeShards is a power of two well above the core count of the machines
// this runs on, so two busy keys rarely share a lock.
const storeShards = 64

type shard struct {
	mu sync.RWMutex
	m  map[string]*entry
	_  [64 - 24 - 8]byte // one shard per cache line: no false sharing between locks
}

// entry holds a value. Keeping it behind a pointer lets SET and INCR of an
// existing key rewrite the value in place, found by a lookup that does not
// allocate, instead of storing (and allocating) the key again.
type entry struct {
	val []byte
}

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

// AppendGet appends the RESP reply to GET key: the value as a bulk string,
// or the null bulk string if key is not set. The value is copied under the
// shard's read lock.
func (s *Store) AppendGet(out, key []byte) []byte {
	sh := s.shard(key)
	sh.mu.RLock()
	e := sh.m[string(key)]
	if e == nil {
		sh.mu.RUnlock()
		return append(out, "$-1\r\n"...)
	}
	out = appendBulk(out, e.val)
	sh.mu.RUnlock()
	return out
}

// Set sets key to a copy of val. An existing key's value buffer is reused
// when val fits it without wasting more than half of it.
func (s *Store) Set(key, val []byte) {
	sh := s.shard(key)
	sh.mu.Lock()
	if e := sh.m[string(key)]; e != nil {
		e.val = reuse(e.val, val)
	} else {
		sh.m[string(key)] = &entry{val: bytes.Clone(val)}
	}
	sh.mu.Unlock()
}

// reuse returns val copied into old's buffer if it fits well, else a new
// copy.
func reuse(old, val []byte) []byte {
	if cap(old) >= len(val) && cap(old) <= 2*len(val)+64 {
		return append(old[:0], val...)
	}
	return bytes.Clone(val)
}

// Delete removes key and reports whether it was set.
func (s *Store) Delete(key []byte) bool {
	sh := s.shard(key)
	sh.mu.Lock()
	_, ok := sh.m[string(key)]
	if ok {
		delete(sh.m, string(key))
	}
	sh.mu.Unlock()
	return ok
}

// Exists reports whether key is set.
func (s *Store) Exists(key []byte) bool {
	sh := s.shard(key)
	sh.mu.RLock()
	_, ok := sh.m[string(key)]
	sh.mu.RUnlock()
	return ok
}

// incrResult says how an INCR went.
type incrResult uint8

const (
	incrOK       incrResult = iota
	incrNotInt              // the value is not a decimal int64
	incrOverflow            // the value is math.MaxInt64
)

// Incr adds one to the decimal integer stored at key (a missing key counts
// as 0) and returns the new value.
func (s *Store) Incr(key []byte) (int64, incrResult) {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[string(key)]
	var n int64
	if e != nil {
		var ok bool
		if n, ok = parseInt(e.val); !ok {
			return 0, incrNotInt
		}
		if n == math.MaxInt64 {
			return 0, incrOverflow
		}
	}
	n++
	if e == nil {
		sh.m[string(key)] = &entry{val: strconv.AppendInt(nil, n, 10)}
	} else {
		e.val = strconv.AppendInt(e.val[:0], n, 10)
	}
	return n, incrOK
}

// parseInt parses b as Redis does (string2ll): an optional '-', then
// decimal digits without leading zeros ("0" itself aside), no spaces, no
// '+', within int64.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	digits := b
	if neg {
		digits = b[1:]
	}
	if len(digits) == 0 || (digits[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var u uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return int64(-u), true // -(1<<63) wraps to MinInt64, as wanted
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}
