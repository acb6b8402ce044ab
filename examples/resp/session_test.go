//go:build linux

package main

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// serveStream runs a stream through a fresh Session the way a server does:
// the stream arrives in the given chunks; after each, Serve is called until
// it consumes nothing, and unconsumed bytes are kept for the next call. It
// returns every reply, whether the connection was to be closed, and the
// bytes never consumed.
func serveStream(sess *Session, chunks [][]byte) (out []byte, closed bool, left []byte) {
	var buf []byte
	for _, ch := range chunks {
		buf = append(buf, ch...)
		for {
			n, o, c := sess.Serve(buf, out)
			out, buf = o, buf[n:]
			if c {
				return out, true, buf
			}
			if n == 0 {
				break
			}
		}
	}
	return out, false, buf
}

func byteChunks(b []byte) [][]byte {
	var cs [][]byte
	for i := range b {
		cs = append(cs, b[i:i+1])
	}
	return cs
}

// resp builds a RESP array command.
func resp(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func TestServe(t *testing.T) {
	long := strings.Repeat("z", 200)
	tests := []struct {
		name      string
		in        string
		want      string
		wantClose bool
		wantLeft  string
	}{
		{"PING", resp("PING"), "+PONG\r\n", false, ""},
		{"PING message", resp("ping", "hi"), "$2\r\nhi\r\n", false, ""},
		{"inline PING", "PING\r\n", "+PONG\r\n", false, ""},
		{"inline, LF only, lower case", "ping\n", "+PONG\r\n", false, ""},
		{"inline with spaces and tabs", "  SET \t k   v \r\nGET k\r\n", "+OK\r\n$1\r\nv\r\n", false, ""},
		{"empty lines", "\r\n\n   \r\n", "", false, ""},
		{"ECHO binary", resp("ECHO", "a\r\n\x00b"), "$5\r\na\r\n\x00b\r\n", false, ""},
		{"ECHO empty", resp("ECHO", ""), "$0\r\n\r\n", false, ""},
		{"SET GET", resp("SET", "k", "v1") + resp("GET", "k"), "+OK\r\n$2\r\nv1\r\n", false, ""},
		{"GET missing", resp("GET", "nope"), "$-1\r\n", false, ""},
		{"SET overwrite, longer and shorter",
			resp("SET", "k", "a") + resp("SET", "k", long) + resp("GET", "k") + resp("SET", "k", "b") + resp("GET", "k"),
			"+OK\r\n+OK\r\n$200\r\n" + long + "\r\n+OK\r\n$1\r\nb\r\n", false, ""},
		{"DEL and EXISTS", resp("SET", "a", "1") + resp("SET", "b", "2") + resp("EXISTS", "a", "b", "c", "a") +
			resp("DEL", "a", "c", "a") + resp("EXISTS", "a", "b"), "+OK\r\n+OK\r\n:3\r\n:1\r\n:1\r\n", false, ""},
		{"INCR", resp("INCR", "n") + resp("INCR", "n") + resp("GET", "n"), ":1\r\n:2\r\n$1\r\n2\r\n", false, ""},
		{"INCR negative", resp("SET", "n", "-5") + resp("INCR", "n"), "+OK\r\n:-4\r\n", false, ""},
		{"INCR not an integer", resp("SET", "n", "1.5") + resp("INCR", "n") + resp("SET", "n", " 1") + resp("INCR", "n") +
			resp("SET", "n", "01") + resp("INCR", "n"),
			"+OK\r\n-ERR value is not an integer or out of range\r\n+OK\r\n-ERR value is not an integer or out of range\r\n" +
				"+OK\r\n-ERR value is not an integer or out of range\r\n", false, ""},
		{"INCR overflow", resp("SET", "n", "9223372036854775807") + resp("INCR", "n"),
			"+OK\r\n-ERR increment or decrement would overflow\r\n", false, ""},
		{"INCR from the smallest", resp("SET", "n", "-9223372036854775808") + resp("INCR", "n"),
			"+OK\r\n:-9223372036854775807\r\n", false, ""},
		{"INCR past 2^64", resp("SET", "n", "18446744073709551616") + resp("INCR", "n"),
			"+OK\r\n-ERR value is not an integer or out of range\r\n", false, ""},
		{"unknown command", resp("FOO", "a", "b"), "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n", false, ""},
		{"unknown command, long args", resp("nope", long, "x"),
			"-ERR unknown command 'nope', with args beginning with: '" + long[:128] + "' \r\n", false, ""},
		{"unknown command, CR LF in it", resp("a\r\nb"), "-ERR unknown command 'a  b', with args beginning with: \r\n", false, ""},
		{"arity", resp("GET") + resp("SET", "k") + resp("PING", "a", "b") + resp("DEL"),
			"-ERR wrong number of arguments for 'get' command\r\n-ERR wrong number of arguments for 'set' command\r\n" +
				"-ERR wrong number of arguments for 'ping' command\r\n-ERR wrong number of arguments for 'del' command\r\n", false, ""},
		{"SET options", resp("SET", "k", "v", "EX", "10"), "-ERR syntax error\r\n", false, ""},
		{"QUIT", resp("PING") + resp("QUIT") + resp("PING"), "+PONG\r\n+OK\r\n", true, resp("PING")},
		{"empty arrays", "*0\r\n*-1\r\n" + resp("PING"), "+PONG\r\n", false, ""},
		{"incomplete", resp("GET", "k")[:15], "", false, resp("GET", "k")[:15]},
		{"complete then incomplete", resp("PING") + "*2\r\n$3", "+PONG\r\n", false, "*2\r\n$3"},
		{"CONFIG GET as redis-benchmark asks", resp("CONFIG", "GET", "save") + resp("CONFIG", "GET", "appendonly"),
			"*2\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n", false, ""},
		{"CONFIG GET *", resp("config", "get", "*"), "*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n", false, ""},
		{"CONFIG GET unknown", resp("CONFIG", "GET", "maxmemory"), "*0\r\n", false, ""},
		{"CONFIG SET", resp("CONFIG", "SET", "a", "b"), "-ERR unknown subcommand 'SET'. Try CONFIG HELP.\r\n", false, ""},
		{"COMMAND DOCS as redis-cli asks", resp("COMMAND", "DOCS"), "*0\r\n", false, ""},
		{"COMMAND", resp("COMMAND"), "*0\r\n", false, ""},
		{"COMMAND COUNT", resp("COMMAND", "COUNT"), ":13\r\n", false, ""},
		{"HELLO 3", resp("HELLO", "3"), "-NOPROTO unsupported protocol version\r\n", false, ""},
		{"CLIENT", resp("CLIENT", "SETNAME", "x") + resp("CLIENT", "SETINFO", "lib-name", "y") + resp("CLIENT", "GETNAME"),
			"+OK\r\n+OK\r\n$-1\r\n", false, ""},
		{"SELECT", resp("SELECT", "0") + resp("SELECT", "1") + resp("SELECT", "x"),
			"+OK\r\n-ERR DB index is out of range\r\n-ERR value is not an integer or out of range\r\n", false, ""},

		// Protocol errors: the reply, then close; replies before it stay.
		{"bad count", "*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n", true, ""},
		{"count with +", "*+1\r\n", "-ERR Protocol error: invalid multibulk length\r\n", true, ""},
		{"count too big", "*1048577\r\n", "-ERR Protocol error: invalid multibulk length\r\n", true, ""},
		{"no $", "*1\r\nx", "-ERR Protocol error: expected '$', got 'x'\r\n", true, ""},
		{"no $, binary", "*1\r\n\x01", "-ERR Protocol error: expected '$', got '\\x01'\r\n", true, ""},
		{"negative bulk", "*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n", true, ""},
		{"bulk over the limit, before its data", resp("SET", "k", "v") + "*2\r\n$3\r\nGET\r\n$536870913\r\n", "+OK\r\n-ERR Protocol error: invalid bulk length\r\n", true, ""},
		{"CR without LF", "*1\r\r", "-ERR Protocol error: expected '\\r\\n' after the multibulk length\r\n", true, ""},
		{"bulk without CRLF", "*1\r\n$4\r\nPINGxx", "-ERR Protocol error: expected '\\r\\n' after a bulk string\r\n", true, ""},
		{"inline too big", strings.Repeat("a", maxLine), "-ERR Protocol error: too big inline request\r\n", true, ""},
		{"count line too big", "*" + strings.Repeat("1", maxLine), "-ERR Protocol error: too big mbulk count string\r\n", true, ""},
		{"bulk line too big", "*1\r\n$" + strings.Repeat("1", maxLine), "-ERR Protocol error: too big bulk count string\r\n", true, ""},
		{"replies before the error", "PING\r\n" + resp("PING") + "*x\r\n" + resp("PING"),
			"+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, feed := range []struct {
				name   string
				chunks [][]byte
			}{
				{"whole", [][]byte{[]byte(tt.in)}},
				{"byte by byte", byteChunks([]byte(tt.in))},
			} {
				sess := NewStore().NewSession(0)
				out, closed, left := serveStream(sess, feed.chunks)
				if string(out) != tt.want || closed != tt.wantClose {
					t.Fatalf("%s: Serve(%q) = %q, close %v; want %q, close %v", feed.name, tt.in, out, closed, tt.want, tt.wantClose)
				}
				if !closed && string(left) != tt.wantLeft {
					t.Fatalf("%s: Serve(%q) left %q unconsumed, want %q", feed.name, tt.in, left, tt.wantLeft)
				}
				if closed && feed.name == "whole" && tt.wantLeft != "" && string(left) != tt.wantLeft {
					t.Fatalf("%s: after close, left %q, want %q", feed.name, left, tt.wantLeft)
				}
				if err := checkReplies(out); err != nil {
					t.Fatalf("%s: replies %q: %v", feed.name, out, err)
				}
			}
		})
	}
}

func TestHello(t *testing.T) {
	for _, in := range []string{resp("HELLO"), resp("HELLO", "2")} {
		sess := NewStore().NewSession(0)
		out, _, _ := serveStream(sess, [][]byte{[]byte(in)})
		want := "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:" +
			strconv.FormatInt(sess.id, 10) + "\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
		if string(out) != want {
			t.Errorf("Serve(%q) = %q, want %q", in, out, want)
		}
	}
}

// checkReplies parses out as a sequence of RESP2 replies, strictly: the
// reference a client applies.
func checkReplies(out []byte) error {
	for len(out) > 0 {
		n, err := parseReply(out)
		if err != nil {
			return err
		}
		out = out[n:]
	}
	return nil
}

func parseReply(b []byte) (int, error) {
	line := bytes.Index(b, []byte("\r\n"))
	if line < 1 {
		return 0, fmt.Errorf("no CRLF-terminated line in %q", b)
	}
	body := string(b[1:line])
	if strings.ContainsAny(body, "\r\n") {
		return 0, fmt.Errorf("CR or LF inside a line: %q", body)
	}
	n := line + 2
	switch b[0] {
	case '+', '-':
		return n, nil
	case ':':
		_, err := strconv.ParseInt(body, 10, 64)
		return n, err
	case '$':
		l, err := strconv.Atoi(body)
		if err != nil || l < -1 {
			return 0, fmt.Errorf("bad bulk length %q", body)
		}
		if l == -1 {
			return n, nil
		}
		if len(b) < n+l+2 || string(b[n+l:n+l+2]) != "\r\n" {
			return 0, fmt.Errorf("bulk of %d bytes not followed by CRLF", l)
		}
		return n + l + 2, nil
	case '*':
		c, err := strconv.Atoi(body)
		if err != nil || c < -1 {
			return 0, fmt.Errorf("bad array length %q", body)
		}
		for range c {
			m, err := parseReply(b[n:])
			if err != nil {
				return 0, err
			}
			n += m
		}
		return n, nil
	}
	return 0, fmt.Errorf("unknown reply type %q", b[0])
}

// TestServeLargeCommandResumes: a 1 MiB SET fed in small pieces is
// parsed once, not from its start at every piece, and gives the value back
// byte for byte.
func TestServeLargeCommandResumes(t *testing.T) {
	val := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	in := []byte(resp("SET", "big", string(val)) + resp("GET", "big"))
	var chunks [][]byte
	for b := in; len(b) > 0; {
		n := min(len(b), 1000)
		chunks = append(chunks, b[:n])
		b = b[n:]
	}
	sess := NewStore().NewSession(0)
	out, closed, left := serveStream(sess, chunks)
	want := "+OK\r\n" + fmt.Sprintf("$%d\r\n%s\r\n", len(val), val)
	if closed || len(left) != 0 || string(out) != want {
		t.Fatalf("1 MiB SET/GET in 1000-byte pieces: %d bytes of reply (close %v, %d left), want %d", len(out), closed, len(left), len(want))
	}
	// A bulk one byte over the limit is refused.
	sess = NewStore().NewSession(len(val) - 1)
	out, closed, _ = serveStream(sess, chunks)
	if !closed || string(out) != "-ERR Protocol error: invalid bulk length\r\n" {
		t.Fatalf("1 MiB with a limit one byte lower: %q, close %v", out, closed)
	}
}

// TestServeReplyBatch: Serve stops after about replyBatch bytes of replies
// and resumes where it stopped.
func TestServeReplyBatch(t *testing.T) {
	st := NewStore()
	sess := st.NewSession(0)
	st.Set([]byte("k"), bytes.Repeat([]byte("v"), 10000))
	in := []byte(strings.Repeat(resp("GET", "k"), 100))
	n, out, _ := sess.Serve(in, nil)
	if n == len(in) || len(out) < replyBatch || len(out) > replyBatch+10100 {
		t.Fatalf("one Serve over 100 GETs of 10 kB: consumed %d of %d, %d bytes of replies; want it to stop after about %d", n, len(in), len(out), replyBatch)
	}
	rest, closed, left := serveStream(sess, [][]byte{in[n:]})
	if closed || len(left) != 0 || len(out)+len(rest) != 100*(10000+len("$10000\r\n\r\n")) {
		t.Fatalf("the rest: %d bytes, close %v, %d left", len(rest), closed, len(left))
	}
}

// TestServeAllocs: the steady-state commands allocate nothing.
func TestServeAllocs(t *testing.T) {
	st := NewStore()
	sess := st.NewSession(0)
	out := make([]byte, 0, 64<<10)
	serve := func(in []byte) {
		n, o, c := sess.Serve(in, out[:0])
		if n != len(in) || c || len(o) == 0 {
			t.Fatalf("Serve(%q) = %d, %q, %v", in, n, o, c)
		}
	}
	st.Set([]byte("key:__rand_int__"), []byte("VXK"))
	st.Set([]byte("counter"), []byte("0"))
	for _, tt := range []struct {
		name string
		in   string
	}{
		{"GET", resp("GET", "key:__rand_int__")},
		{"SET existing", resp("SET", "key:__rand_int__", "XXX")},
		{"GET missing", resp("GET", "missing")},
		{"PING", resp("PING")},
		{"inline PING", "PING\r\n"},
		{"ECHO", resp("ECHO", "hello")},
		{"EXISTS", resp("EXISTS", "key:__rand_int__", "missing")},
		{"INCR existing", resp("INCR", "counter")},
		{"pipeline of 16 GET and SET", strings.Repeat(resp("SET", "key:__rand_int__", "VXK")+resp("GET", "key:__rand_int__"), 8)},
	} {
		in := []byte(tt.in)
		serve(in) // warm up: the Session's argument slices reach their size
		if a := testing.AllocsPerRun(200, func() { serve(in) }); a != 0 {
			t.Errorf("%s: %v allocations per Serve, want 0", tt.name, a)
		}
	}
}

// TestStoreConcurrent: INCR from many goroutines on shared and distinct
// keys loses no update; SET and GET of one key never tear a value. Run with
// -race.
func TestStoreConcurrent(t *testing.T) {
	st := NewStore()
	const workers, rounds = 8, 500
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess := st.NewSession(0)
			own := fmt.Sprintf("own%d", w)
			vals := [2]string{strings.Repeat("a", 100), strings.Repeat("b", 100)}
			var out []byte
			for i := range rounds {
				in := resp("INCR", "shared") + resp("INCR", own) + resp("SET", "torn", vals[i%2]) + resp("GET", "torn")
				n, o, c := sess.Serve([]byte(in), out[:0])
				out = o
				if n != len(in) || c {
					errs <- fmt.Errorf("Serve(%q) consumed %d, close %v", in, n, c)
					return
				}
				got := string(out[bytes.LastIndex(out, []byte("$100\r\n"))+6:])
				if got != vals[0]+"\r\n" && got != vals[1]+"\r\n" {
					errs <- fmt.Errorf("GET torn = %q: a mix of two values", got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check := func(key string, want int) {
		out := st.AppendGet(nil, []byte(key))
		if w := fmt.Sprintf("$%d\r\n%d\r\n", len(strconv.Itoa(want)), want); string(out) != w {
			t.Errorf("GET %s = %q, want %q", key, out, w)
		}
	}
	check("shared", workers*rounds)
	for w := range workers {
		check(fmt.Sprintf("own%d", w), rounds)
	}
}

// TestTooLargeAllocatesNothing: a bulk length of 1 GiB over a 1 MiB limit is
// refused with nothing allocated for it.
func TestTooLargeAllocatesNothing(t *testing.T) {
	sess := NewStore().NewSession(1 << 20)
	in := []byte("*2\r\n$3\r\nGET\r\n$1073741824\r\n")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, out, closed := sess.Serve(in, nil)
	runtime.ReadMemStats(&after)
	if !closed || string(out) != "-ERR Protocol error: invalid bulk length\r\n" {
		t.Fatalf("Serve(%q) = %q, close %v", in, out, closed)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Fatalf("refusing a 1 GiB bulk allocated %d bytes", grew)
	}
}

func TestParseInt(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"-1", -1, true}, {"9223372036854775807", 1<<63 - 1, true},
		{"-9223372036854775808", -1 << 63, true}, {"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false},
		{"", 0, false}, {"-", 0, false}, {"-0", 0, false}, {"01", 0, false}, {"+1", 0, false}, {" 1", 0, false},
		{"1 ", 0, false}, {"1a", 0, false}, {"99999999999999999999", 0, false}, {"123456789012345678901", 0, false},
	} {
		if got, ok := parseInt([]byte(tt.in)); got != tt.want || ok != tt.ok {
			t.Errorf("parseInt(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
