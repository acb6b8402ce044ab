package netcore_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// httpLoop is a small HTTP/1.1 server written as a LoopHandler, for curl
// to talk to over TLS on the Loop. A request is a request line and headers
// (at most maxHead bytes); GET of any path answers a line naming the path
// and the ALPN protocol; POST /echo answers with the request's body,
// streamed back as it arrives (so a body larger than the Loop's MaxInput
// passes), after "100 Continue" if the client expects one. Connections
// are kept alive unless the client says "Connection: close". No chunked
// bodies, no pipelining subtleties beyond answering in order.
type httpLoop struct {
	conns, requests atomic.Int64
}

// httpConn is a connection's state: the body bytes of the current request
// still to echo, and whether to close after them.
type httpConn struct {
	body  int
	close bool
}

const maxHead = 16 << 10

func (h *httpLoop) OnOpen(c *netcore.LoopConn) {
	h.conns.Add(1)
	c.SetUserData(&httpConn{})
}

func (h *httpLoop) OnData(c *netcore.LoopConn) {
	s := c.UserData().(*httpConn)
	for c.Buffered() > 0 {
		if s.body > 0 {
			if c.OutputFull() {
				return // offered again once the output has drained
			}
			n := min(s.body, c.Buffered())
			c.Write(c.Next(n))
			if s.body -= n; s.body == 0 && s.close {
				c.Close()
				return
			}
			continue
		}
		in := c.Peek(-1)
		end := bytes.Index(in, []byte("\r\n\r\n"))
		if end < 0 {
			if len(in) > maxHead {
				h.reply(c, "431 Request Header Fields Too Large", "request head too large\n", true)
			}
			return
		}
		method, target, hdr, err := parseHead(string(in[:end]))
		c.Discard(end + 4)
		if err != nil {
			h.reply(c, "400 Bad Request", err.Error()+"\n", true)
			return
		}
		h.requests.Add(1)
		s.close = strings.EqualFold(hdr["connection"], "close")
		switch {
		case method == "GET":
			body := fmt.Sprintf("hello from the loop: %s over %s\n", target, c.ConnectionState().NegotiatedProtocol)
			h.reply(c, "200 OK", body, s.close)
		case method == "POST" && target == "/echo":
			n, err := strconv.Atoi(hdr["content-length"])
			if err != nil || n < 0 {
				h.reply(c, "411 Length Required", "POST /echo needs a Content-Length\n", true)
				return
			}
			if strings.EqualFold(hdr["expect"], "100-continue") {
				c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", n)
			s.body = n
			if n == 0 && s.close {
				c.Close()
				return
			}
		default:
			h.reply(c, "405 Method Not Allowed", "GET anything, or POST /echo\n", s.close)
		}
	}
}

// reply writes a whole response, and closes the connection after it if
// closeAfter.
func (h *httpLoop) reply(c *netcore.LoopConn, status, body string, closeAfter bool) {
	conn := ""
	if closeAfter {
		conn = "Connection: close\r\n"
	}
	fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s", status, len(body), conn, body)
	if closeAfter {
		c.Discard(-1)
		c.Close()
	}
}

func (h *httpLoop) OnEOF(c *netcore.LoopConn)              {}
func (h *httpLoop) OnClose(c *netcore.LoopConn, err error) {}

// parseHead parses a request line and headers (names lower-cased).
func parseHead(head string) (method, target string, hdr map[string]string, err error) {
	lines := strings.Split(head, "\r\n")
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 || parts[2] != "HTTP/1.1" {
		return "", "", nil, fmt.Errorf("bad request line %q", lines[0])
	}
	hdr = make(map[string]string)
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return "", "", nil, fmt.Errorf("bad header line %q", l)
		}
		hdr[strings.ToLower(name)] = strings.TrimSpace(value)
	}
	return parts[0], parts[1], hdr, nil
}

// TestLoopTLSCurl drives an HTTP/1.1 handler on TLS on the Loop with curl:
// a GET, two requests on one kept-alive connection, ALPN with and without
// --http1.1, and a POST of 1 MiB echoed back byte for byte.
func TestLoopTLSCurl(t *testing.T) {
	curl := testkit.NeedTool(t, "curl", "curl")
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	dir := t.TempDir()
	pki.WriteFiles(t, dir)
	h := &httpLoop{}
	lp := &netcore.Loop{Handler: h, Loops: 2}
	config := pki.ServerConfig()
	config.NextProtos = []string{"http/1.1"}
	addr := serveLoopTLS(t, lp, config)
	_, port, _ := net.SplitHostPort(addr)
	url := "https://localhost:" + port
	// The certificate names localhost; --resolve keeps curl off ::1,
	// where nothing listens.
	base := []string{"--silent", "--show-error", "--cacert", filepath.Join(dir, "ca.crt"),
		"--resolve", "localhost:" + port + ":127.0.0.1", "--max-time", "10"}
	curlRun := func(t *testing.T, args ...string) (stdout, stderr string) {
		t.Helper()
		stdout, stderr, err := testkit.RunTool(t, "", curl, append(base, args...)...)
		if err != nil {
			t.Fatalf("curl %q: %v\nstdout: %s\nstderr: %s", args, err, stdout, stderr)
		}
		return stdout, stderr
	}

	t.Run("GET", func(t *testing.T) {
		stdout, _ := curlRun(t, "-w", "%{http_code} HTTP/%{http_version}\n", url+"/hello")
		if want := "hello from the loop: /hello over http/1.1\n200 HTTP/1.1\n"; stdout != want {
			t.Errorf("curl GET: %q, want %q", stdout, want)
		}
	})

	t.Run("keep-alive", func(t *testing.T) {
		conns, reqs := h.conns.Load(), h.requests.Load()
		// Two URLs in one run: curl reuses the connection for the second,
		// and num_connects says so (1, then 0).
		stdout, _ := curlRun(t, "-w", "connects=%{num_connects}\n", url+"/one", url+"/two", url+"/three")
		want := "hello from the loop: /one over http/1.1\nconnects=1\n" +
			"hello from the loop: /two over http/1.1\nconnects=0\n" +
			"hello from the loop: /three over http/1.1\nconnects=0\n"
		if stdout != want {
			t.Errorf("curl with three URLs: %q, want %q", stdout, want)
		}
		if c, r := h.conns.Load()-conns, h.requests.Load()-reqs; c != 1 || r != 3 {
			t.Errorf("the server saw %d connections and %d requests, want 1 and 3", c, r)
		}
	})

	t.Run("ALPN", func(t *testing.T) {
		// curl offers h2 and http/1.1 unless told --http1.1; the server
		// knows only http/1.1 and takes it either way.
		for _, flag := range []string{"--http1.1", "--http2"} {
			stdout, stderr := curlRun(t, "--verbose", flag, "-w", "HTTP/%{http_version}\n", url+"/alpn")
			if want := "hello from the loop: /alpn over http/1.1\nHTTP/1.1\n"; stdout != want {
				t.Errorf("curl %s: %q, want %q", flag, stdout, want)
			}
			if want := "ALPN: server accepted http/1.1"; !strings.Contains(stderr, want) {
				t.Errorf("curl %s: its log lacks %q:\n%s", flag, want, stderr)
			}
		}
	})

	t.Run("POST 1 MiB", func(t *testing.T) {
		body := testkit.RandomBytes(1 << 20)
		in, out := filepath.Join(t.TempDir(), "body"), filepath.Join(t.TempDir(), "echo")
		if err := os.WriteFile(in, body, 0o600); err != nil {
			t.Fatal(err)
		}
		conns := h.conns.Load()
		w := "%{http_code} up=%{size_upload} down=%{size_download} connects=%{num_connects}\n"
		// curl 7.88 asks for "100 Continue" only above 1 MiB; asked here,
		// and told to wait for it as long as the test does.
		args := []string{"--verbose", "-H", "Expect: 100-continue", "--expect100-timeout", "10",
			"--data-binary", "@" + in, "-o", out, "-w", w, url + "/echo", "--next"}
		args = append(append(args, base...), "-w", w, url+"/after")
		stdout, stderr := curlRun(t, args...)
		// After --next, a GET on the same connection: the echo must have
		// ended exactly at the body's end for it to be answered.
		want := "200 up=1048576 down=1048576 connects=1\n" +
			"hello from the loop: /after over http/1.1\n200 up=0 down=42 connects=0\n"
		if stdout != want {
			t.Errorf("curl POST: %q, want %q", stdout, want)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, body) {
			t.Errorf("the echoed body differs from the 1 MiB sent (%d bytes back)", len(got))
		}
		if !strings.Contains(stderr, "< HTTP/1.1 100 Continue") {
			t.Errorf("curl asked for 100 Continue and did not get it:\n%s", stderr)
		}
		if c := h.conns.Load() - conns; c != 1 {
			t.Errorf("the server saw %d connections, want 1", c)
		}
	})
}
