//go:build linux

package main

import (
	"bytes"
	"fmt"
	"strconv"
)

// Limits of the protocol, as Redis sets them.
const (
	// DefaultMaxBulk is the longest bulk string (one argument) accepted by
	// default, Redis's proto-max-bulk-len (512 MiB); the -max-bulk flag
	// changes it. The limit costs nothing until bytes arrive: a length
	// line is checked against it, and no buffer is sized by it.
	DefaultMaxBulk = 512 << 20
	// maxLine is the longest inline command, and the longest "*<count>" or
	// "$<length>" line, Redis's PROTO_INLINE_MAX_SIZE.
	maxLine = 64 << 10
	// maxArgs is the largest argument count of a command, Redis's limit for
	// "*<count>".
	maxArgs = 1 << 20
	// replyBatch is how many bytes of replies one Serve call produces at
	// most before it returns, so that a long pipeline of large replies is
	// written out in pieces instead of held in memory.
	replyBatch = 64 << 10
	// maxReplyHeader bounds what a reply adds to the longest argument or
	// value it carries (a bulk string's "$<length>\r\n" and "\r\n", an
	// error's text around the argument it quotes): no reply is longer
	// than -max-bulk plus maxReplyHeader bytes.
	maxReplyHeader = 512
	// maxKeptArgs is how many argument slots a Session keeps for the next
	// command. A command with more arguments gets slices of its own, let go
	// once it is answered, so that a command with a million arguments
	// leaves nothing behind.
	maxKeptArgs = 128
)

// span locates an argument inside the command being parsed, relative to
// the command's first byte, so that it survives the caller moving its input
// buffer between two Serve calls.
type span struct{ off, len int }

// Session is the state of one client connection: the parser's progress
// through an incomplete command, and the argument slices it reuses. A
// Session belongs to one goroutine (or one event loop) at a time; the Store
// behind it is shared.
type Session struct {
	store   *Store
	maxBulk int
	id      int64

	// An incomplete multibulk command: count arguments announced, spans of
	// those complete so far, next is where the next "$" line starts
	// (relative to the command's start). count == 0: no command in progress.
	count int
	spans []span
	next  int

	args [][]byte // the complete command's arguments, slices of in
}

// NewSession returns the state for one new connection. maxBulk bounds a
// single argument (a bulk string); 0 means DefaultMaxBulk.
func (s *Store) NewSession(maxBulk int) *Session {
	if maxBulk <= 0 {
		maxBulk = DefaultMaxBulk
	}
	return &Session{store: s, maxBulk: maxBulk, id: s.ids.Add(1)}
}

// Serve parses the commands at the start of in, runs each complete one and
// appends its reply to out; it returns how many bytes of in it consumed, the
// extended out, and whether the connection must be closed once out is
// written (after QUIT, or a protocol error whose reply is then the last
// thing in out).
//
// An incomplete command at the end of in is left unconsumed: the caller
// keeps those bytes and calls Serve again with them at the start of in,
// followed by whatever arrived since (the Session remembers how far it got,
// so a large command arriving in many pieces is not parsed again from its
// start each time). Serve stops after about 64 KiB of replies; while it
// consumes something, call it again on the rest.
//
// Serve allocates nothing for GET, SET (of an existing key, with a value
// that fits the old one's buffer), PING, ECHO, EXISTS and INCR of an existing
// key, once in and out have room.
func (s *Session) Serve(in, out []byte) (consumed int, reply []byte, closeConn bool) {
	start := len(out)
	for consumed < len(in) && len(out)-start < replyBatch {
		n, err := s.parse(in[consumed:])
		if err != "" {
			s.reset()
			out = append(out, "-ERR Protocol error: "...)
			out = append(out, err...)
			return len(in), append(out, "\r\n"...), true
		}
		if n == 0 {
			break // incomplete
		}
		consumed += n
		if len(s.args) > 0 { // else an empty line, "*0" or "*-1": nothing to run
			out, closeConn = s.exec(out)
		}
		s.reset()
		if closeConn {
			return consumed, out, true
		}
	}
	return consumed, out, false
}

// reset forgets the command in progress or just run. It clears the
// argument slices, which point into the caller's input buffer, so that
// they keep no buffer the caller has let go alive; and it drops them
// altogether if the command had more than maxKeptArgs arguments.
func (s *Session) reset() {
	s.count, s.next = 0, 0
	if cap(s.spans) > maxKeptArgs {
		s.spans = nil
	}
	s.spans = s.spans[:0]
	if cap(s.args) > maxKeptArgs {
		s.args = nil
	}
	clear(s.args)
	s.args = s.args[:0]
}

// parse parses one command at the start of b into s.args. It returns the
// command's length, or 0 if b holds only part of it, or a protocol error.
// What it decides depends only on the bytes it has seen: feeding a stream in
// pieces gives the same commands and errors as feeding it whole.
func (s *Session) parse(b []byte) (n int, err string) {
	s.args = s.args[:0]
	if b[0] != '*' {
		return s.parseInline(b)
	}
	if s.count == 0 {
		count, end, err := parseLine(b, 1, "multibulk", "mbulk")
		if err != "" || end == 0 {
			return 0, err
		}
		if count > maxArgs {
			return 0, "invalid multibulk length"
		}
		if count <= 0 {
			return end, "" // "*0", "*-1": no command
		}
		s.count, s.next = int(count), end
	}
	for len(s.spans) < s.count {
		p := s.next
		if p >= len(b) {
			return 0, ""
		}
		if b[p] != '$' {
			return 0, fmt.Sprintf("expected '$', got '%s'", printable(b[p]))
		}
		l, end, err := parseLine(b, p+1, "bulk", "bulk")
		if err != "" || end == 0 {
			return 0, err
		}
		if l < 0 || l > int64(s.maxBulk) {
			return 0, "invalid bulk length"
		}
		if len(b)-end < int(l)+2 {
			return 0, ""
		}
		if b[end+int(l)] != '\r' || b[end+int(l)+1] != '\n' {
			return 0, "expected '\\r\\n' after a bulk string"
		}
		s.spans = append(s.spans, span{end, int(l)})
		s.next = end + int(l) + 2
	}
	if s.next > len(b) {
		return 0, "" // only if the caller did not pass back what was left
	}
	for _, sp := range s.spans {
		s.args = append(s.args, b[sp.off:sp.off+sp.len:sp.off+sp.len])
	}
	n = s.next
	s.count, s.next = 0, 0
	s.spans = s.spans[:0]
	return n, ""
}

// parseLine parses the decimal number that starts at b[from] and ends at
// "\r\n": its value and the index after the "\r\n", or end == 0 if the line
// is not complete yet. what and short name the line in errors, as Redis
// does ("invalid multibulk length", "too big mbulk count string").
func parseLine(b []byte, from int, what, short string) (v int64, end int, err string) {
	window := b[from:min(len(b), from+maxLine)]
	i := bytes.IndexByte(window, '\r')
	if i < 0 {
		if len(window) == maxLine {
			return 0, 0, "too big " + short + " count string"
		}
		return 0, 0, ""
	}
	if from+i+1 >= len(b) {
		return 0, 0, "" // the '\n' is still to come
	}
	if b[from+i+1] != '\n' {
		return 0, 0, "expected '\\r\\n' after the " + what + " length"
	}
	v, ok := parseInt(b[from : from+i])
	if !ok {
		return 0, 0, "invalid " + what + " length"
	}
	return v, from + i + 2, ""
}

// parseInline splits a line ending in "\n" (or "\r\n") into arguments at
// spaces and tabs. Quoting is not supported: an argument with a space needs
// the RESP array form.
func (s *Session) parseInline(b []byte) (int, string) {
	window := b[:min(len(b), maxLine)]
	i := bytes.IndexByte(window, '\n')
	if i < 0 {
		if len(window) == maxLine {
			return 0, "too big inline request"
		}
		return 0, ""
	}
	line := b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	for len(line) > 0 {
		j := 0
		for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
			j++
		}
		line = line[j:]
		j = 0
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if j > 0 {
			s.args = append(s.args, line[:j:j])
		}
		line = line[j:]
	}
	return i + 1, ""
}

// printable quotes one byte for an error message.
func printable(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(rune(c))
	}
	return fmt.Sprintf("\\x%02x", c)
}

// is reports whether name equals upper (an upper-case ASCII command name),
// ignoring case.
func is(name []byte, upper string) bool {
	if len(name) != len(upper) {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// exec runs the command in s.args and appends its reply.
func (s *Session) exec(out []byte) ([]byte, bool) {
	args := s.args
	name := args[0]
	st := s.store
	switch {
	case is(name, "GET"):
		if len(args) != 2 {
			return appendArity(out, "get"), false
		}
		return st.AppendGet(out, args[1]), false
	case is(name, "SET"):
		if len(args) < 3 {
			return appendArity(out, "set"), false
		}
		if len(args) > 3 {
			return append(out, "-ERR syntax error\r\n"...), false
		}
		st.Set(args[1], args[2])
		return append(out, "+OK\r\n"...), false
	case is(name, "PING"):
		switch len(args) {
		case 1:
			return append(out, "+PONG\r\n"...), false
		case 2:
			return appendBulk(out, args[1]), false
		}
		return appendArity(out, "ping"), false
	case is(name, "ECHO"):
		if len(args) != 2 {
			return appendArity(out, "echo"), false
		}
		return appendBulk(out, args[1]), false
	case is(name, "DEL"), is(name, "EXISTS"):
		if len(args) < 2 {
			return appendArity(out, string(bytes.ToLower(name))), false
		}
		del := is(name, "DEL")
		n := 0
		for _, k := range args[1:] {
			if del && st.Delete(k) || !del && st.Exists(k) {
				n++
			}
		}
		return appendInt(out, int64(n)), false
	case is(name, "INCR"):
		if len(args) != 2 {
			return appendArity(out, "incr"), false
		}
		switch n, r := st.Incr(args[1]); r {
		case incrNotInt:
			return append(out, "-ERR value is not an integer or out of range\r\n"...), false
		case incrOverflow:
			return append(out, "-ERR increment or decrement would overflow\r\n"...), false
		default:
			return appendInt(out, n), false
		}
	case is(name, "QUIT"):
		return append(out, "+OK\r\n"...), true
	case is(name, "CONFIG"):
		return s.config(out), false
	case is(name, "COMMAND"):
		return s.command(out), false
	case is(name, "HELLO"):
		return s.hello(out), false
	case is(name, "CLIENT"):
		return s.client(out), false
	case is(name, "SELECT"):
		if len(args) != 2 {
			return appendArity(out, "select"), false
		}
		if db, ok := parseInt(args[1]); !ok || db != 0 {
			if !ok {
				return append(out, "-ERR value is not an integer or out of range\r\n"...), false
			}
			return append(out, "-ERR DB index is out of range\r\n"...), false
		}
		return append(out, "+OK\r\n"...), false
	}
	return appendUnknown(out, args), false
}

// config answers CONFIG GET for the parameters redis-benchmark asks about
// ("save", "appendonly": this server persists nothing); other parameters
// match nothing.
func (s *Session) config(out []byte) []byte {
	args := s.args
	if len(args) < 2 {
		return appendArity(out, "config")
	}
	if !is(args[1], "GET") {
		return appendError(out, fmt.Sprintf("ERR unknown subcommand '%s'. Try CONFIG HELP.", args[1]))
	}
	if len(args) < 3 {
		return appendArity(out, "config|get")
	}
	params := [...][2]string{{"save", ""}, {"appendonly", "no"}}
	var found [len(params)]bool
	n := 0
	for _, pat := range args[2:] {
		for i, p := range params {
			if !found[i] && (string(pat) == "*" || bytes.EqualFold(pat, []byte(p[0]))) {
				found[i] = true
				n++
			}
		}
	}
	out = appendArrayHeader(out, 2*n)
	for i, p := range params {
		if found[i] {
			out = appendBulk(appendBulk(out, []byte(p[0])), []byte(p[1]))
		}
	}
	return out
}

// commandNames are the commands this server runs, for COMMAND COUNT.
var commandNames = []string{"get", "set", "ping", "echo", "del", "exists", "incr", "quit",
	"config", "command", "hello", "client", "select"}

// command answers COMMAND minimally: redis-cli asks for COMMAND DOCS at
// start-up (for its hints) and copes with an empty answer.
func (s *Session) command(out []byte) []byte {
	args := s.args
	switch {
	case len(args) == 1, is(args[1], "DOCS"):
		return appendArrayHeader(out, 0)
	case is(args[1], "COUNT"):
		return appendInt(out, int64(len(commandNames)))
	}
	return appendError(out, fmt.Sprintf("ERR unknown subcommand '%s'. Try COMMAND HELP.", args[1]))
}

// hello answers HELLO for protocol 2 (the only one spoken here) with the
// map Redis sends, as a flat array.
func (s *Session) hello(out []byte) []byte {
	args := s.args
	if len(args) > 1 {
		v, ok := parseInt(args[1])
		if !ok {
			return append(out, "-ERR Protocol version is not an integer or out of range\r\n"...)
		}
		if v != 2 {
			return append(out, "-NOPROTO unsupported protocol version\r\n"...)
		}
	}
	out = appendArrayHeader(out, 14)
	for _, kv := range [...][2]string{{"server", "redis"}, {"version", "7.0.0"}} {
		out = appendBulk(appendBulk(out, []byte(kv[0])), []byte(kv[1]))
	}
	out = appendInt(appendBulk(out, []byte("proto")), 2)
	out = appendInt(appendBulk(out, []byte("id")), s.id)
	for _, kv := range [...][2]string{{"mode", "standalone"}, {"role", "master"}} {
		out = appendBulk(appendBulk(out, []byte(kv[0])), []byte(kv[1]))
	}
	return appendArrayHeader(appendBulk(out, []byte("modules")), 0)
}

// client answers the CLIENT subcommands clients send at start-up: SETNAME
// and SETINFO are accepted (and not kept), GETNAME says no name, ID gives
// the connection's number.
func (s *Session) client(out []byte) []byte {
	args := s.args
	if len(args) < 2 {
		return appendArity(out, "client")
	}
	switch sub := args[1]; {
	case is(sub, "SETNAME"), is(sub, "SETINFO"):
		return append(out, "+OK\r\n"...)
	case is(sub, "GETNAME"):
		return append(out, "$-1\r\n"...)
	case is(sub, "ID"):
		return appendInt(out, s.id)
	}
	return appendError(out, fmt.Sprintf("ERR unknown subcommand '%s'. Try CLIENT HELP.", args[1]))
}

func appendBulk(out, b []byte) []byte {
	out = append(out, '$')
	out = strconv.AppendInt(out, int64(len(b)), 10)
	out = append(out, "\r\n"...)
	out = append(out, b...)
	return append(out, "\r\n"...)
}

func appendInt(out []byte, n int64) []byte {
	out = append(out, ':')
	out = strconv.AppendInt(out, n, 10)
	return append(out, "\r\n"...)
}

func appendArrayHeader(out []byte, n int) []byte {
	out = append(out, '*')
	out = strconv.AppendInt(out, int64(n), 10)
	return append(out, "\r\n"...)
}

// appendError appends msg as a RESP error, with any CR or LF (which would
// end the line early) turned into spaces, as Redis does.
func appendError(out []byte, msg string) []byte {
	out = append(out, '-')
	for i := range len(msg) {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		out = append(out, c)
	}
	return append(out, "\r\n"...)
}

func appendArity(out []byte, name string) []byte {
	return appendError(out, "ERR wrong number of arguments for '"+name+"' command")
}

// appendUnknown appends Redis's answer to a command it does not know: the
// name and the first arguments, quoted, each cut to fit in 128 bytes.
func appendUnknown(out []byte, args [][]byte) []byte {
	var quoted []byte
	for _, a := range args[1:] {
		if len(quoted) >= 128 {
			break
		}
		room := 128 - len(quoted)
		quoted = append(quoted, '\'')
		quoted = append(quoted, a[:min(len(a), room)]...)
		quoted = append(quoted, "' "...)
	}
	name := args[0][:min(len(args[0]), 128)]
	return appendError(out, fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", name, quoted))
}
