package netcore

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

// records.take hands out a TLS record stream, in whatever pieces the reads
// bring it and whatever room tls offers, without ever crossing the end of
// a record, and loses or adds no byte.
func TestRecordsTakeStopsAtRecordEnds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// A stream of records with bodies of 0 to 40000 bytes (past
		// what tls accepts: the framing must not care).
		var stream []byte
		var ends []int // where each record ends in the stream
		for i := range rapid.IntRange(1, 8).Draw(t, "records") {
			body := rapid.OneOf(rapid.IntRange(0, 40), rapid.IntRange(0, 40000)).Draw(t, "body")
			stream = append(stream, 23, 3, 3, byte(body>>8), byte(body))
			stream = append(stream, bytes.Repeat([]byte{byte(i)}, body)...)
			ends = append(ends, len(stream))
		}
		var r records
		var out []byte
		rest := stream
		for len(rest) > 0 {
			// One socket read's worth, then takes until it is used up.
			src := rest[:rapid.IntRange(1, len(rest)).Draw(t, "read")]
			rest = rest[len(src):]
			for len(src) > 0 {
				p := make([]byte, rapid.IntRange(1, 20000).Draw(t, "room"))
				n := r.take(p, src)
				if n == 0 {
					t.Fatalf("take handed nothing with %d bytes in hand and %d of room", len(src), len(p))
				}
				from := len(out)
				out = append(out, p[:n]...)
				src = src[n:]
				for _, e := range ends {
					if from < e && len(out) > e {
						t.Fatalf("one take handed bytes %d to %d, across the record end at %d", from, len(out), e)
					}
				}
			}
		}
		if !bytes.Equal(out, stream) {
			t.Fatalf("handed out %d bytes that differ from the %d-byte stream", len(out), len(stream))
		}
		if r.hdrN != 0 || r.left != 0 {
			t.Fatalf("after whole records, the framing is mid-record (hdrN %d, left %d)", r.hdrN, r.left)
		}
	})
}
