//go:build linux

package main

import (
	"bytes"
	"testing"
)

// FuzzServe feeds arbitrary bytes to a Session, whole and cut into pieces
// the fuzzer chooses: it never panics, both feedings give exactly the same
// replies and the same verdict (close or not, bytes left over), and every
// reply is well-formed RESP.
func FuzzServe(f *testing.F) {
	f.Add([]byte(resp("SET", "k", "v")+resp("GET", "k")+"PING\r\n"), []byte{3, 1, 4})
	f.Add([]byte(resp("INCR", "n")+resp("INCR", "n")+resp("QUIT")+resp("PING")), []byte{0})
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$99999\r\n"), []byte{5, 5})
	f.Add([]byte("*1\r\n$4\r\nPINGxx"), []byte{})
	f.Add([]byte(resp("CONFIG", "GET", "*")+resp("HELLO")+resp("CLIENT", "ID")+"*0\r\n*-1\r\n\n"), []byte{7})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		const maxBulk = 1000 // small, so the limit is reached
		whole, wholeClosed, wholeLeft := serveStream(NewStore().NewSession(maxBulk), [][]byte{data})

		var chunks [][]byte
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(n, int(cuts[i])+1)
			}
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		pieces, piecesClosed, piecesLeft := serveStream(NewStore().NewSession(maxBulk), chunks)

		if !bytes.Equal(whole, pieces) || wholeClosed != piecesClosed {
			t.Fatalf("input %q\nwhole:     %q (close %v)\nin pieces: %q (close %v)", data, whole, wholeClosed, pieces, piecesClosed)
		}
		if !wholeClosed && !bytes.Equal(wholeLeft, piecesLeft) {
			t.Fatalf("input %q: whole leaves %q, in pieces %q", data, wholeLeft, piecesLeft)
		}
		if err := checkReplies(whole); err != nil {
			t.Fatalf("input %q: replies %q: %v", data, whole, err)
		}
	})
}
