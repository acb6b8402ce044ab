// Package kvproto is the wire format of the key-value server in "Build Your
// Own Redis" (chapters 4 to 6), as pure functions over byte slices: no I/O,
// nothing retained, no allocation in steady state. The server
// (examples/kv) and the client (examples/kv/client) share it.
//
// Every message, either way, is a frame: a 4-byte little-endian length, then
// that many bytes of payload (NewCodec). A request's payload is a list of
// strings:
//
//	count  uint32 LE          number of strings, at most MaxArgs
//	count times:
//	  len  uint32 LE          the string's length
//	  data [len]byte
//
// with no byte after the last string. A reply's payload is a status, then
// data whose meaning depends on it:
//
//	status uint32 LE          OK, ERR or NX (the book's RES_OK, RES_ERR, RES_NX)
//	data   the rest           get's value (OK); a message (ERR); nothing (NX)
package kvproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/netcore-dev/netcore/netcore"
)

// DefaultMaxMsg is the default largest payload of a frame, 32 MiB: the
// book's k_max_msg from chapter 6 on (chapter 4 has 4096).
const DefaultMaxMsg = 32 << 20

// MaxArgs is the most strings a request may hold: the book's k_max_args.
const MaxArgs = 200_000

// NewCodec returns the frame format of the protocol: a 4-byte little-endian
// length, then a payload of at most maxMsg bytes. maxMsg must be from
// MinMaxMsg to math.MaxUint32.
func NewCodec(maxMsg int) (netcore.FrameCodec, error) {
	if maxMsg < MinMaxMsg {
		return netcore.FrameCodec{}, fmt.Errorf("kvproto: maximum message size %d: want at least %d bytes", maxMsg, MinMaxMsg)
	}
	return netcore.NewFrameCodec(4, binary.LittleEndian, maxMsg)
}

// MinMaxMsg is the smallest maximum message size NewCodec accepts, the
// book's k_max_msg of chapter 4: far more than a status and the longest
// error message the server sends (which quotes at most 64 bytes of input).
const MinMaxMsg = 4096

// Status is a reply's status code.
type Status uint32

// The status codes, as the book's RES_OK, RES_ERR and RES_NX.
const (
	OK  Status = 0 // the command ran; the data is get's value, or empty
	ERR Status = 1 // the request was refused; the data says why
	NX  Status = 2 // get: the key is not set; the data is empty
)

// String returns "OK", "ERR" or "NX", or "Status(n)" for any other code.
func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case ERR:
		return "ERR"
	case NX:
		return "NX"
	}
	return "Status(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// ErrBadRequest is matched (errors.Is) by every error ParseRequest
// returns; the error's text, which says what was wrong and where, is what
// the server sends back in its ERR reply.
var ErrBadRequest = errors.New("bad request")

// ParseRequest parses a request payload and appends its strings to dst,
// returning the extended slice. The strings alias payload (their capacity
// is cut to their length, so appending to one never overwrites the next);
// nothing is copied, and nothing is allocated once dst has room for them.
//
// A payload that is not exactly a count followed by that many
// length-prefixed strings is an error matching ErrBadRequest, naming the
// offending count, length or trailing bytes; dst is then returned with its
// original length. A count over MaxArgs, or over what the payload could
// hold at 4 bytes a string, is refused before any string is looked at, so
// dst grows only with strings actually present.
func ParseRequest(dst [][]byte, payload []byte) ([][]byte, error) {
	if len(payload) < 4 {
		return dst, fmt.Errorf("%w: a %d-byte payload, too short for the 4-byte string count", ErrBadRequest, len(payload))
	}
	n := binary.LittleEndian.Uint32(payload)
	rest := payload[4:]
	if n > MaxArgs {
		return dst, fmt.Errorf("%w: %d strings, over the limit of %d", ErrBadRequest, n, MaxArgs)
	}
	if uint64(n)*4 > uint64(len(rest)) {
		return dst, fmt.Errorf("%w: %d strings declared, but the %d bytes after the count hold at most %d",
			ErrBadRequest, n, len(rest), len(rest)/4)
	}
	start := len(dst)
	for i := range n {
		if len(rest) < 4 {
			return dst[:start], fmt.Errorf("%w: string %d of %d: %d bytes left, too few for its 4-byte length",
				ErrBadRequest, i+1, n, len(rest))
		}
		l := binary.LittleEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(l) > uint64(len(rest)) {
			return dst[:start], fmt.Errorf("%w: string %d of %d claims %d bytes, but %d remain",
				ErrBadRequest, i+1, n, l, len(rest))
		}
		dst = append(dst, rest[:l:l])
		rest = rest[l:]
	}
	if len(rest) > 0 {
		return dst[:start], fmt.Errorf("%w: %d bytes after the last of %d strings", ErrBadRequest, len(rest), n)
	}
	return dst, nil
}

// RequestSize returns the size of the payload AppendRequest makes of args.
func RequestSize(args ...[]byte) int {
	n := 4
	for _, a := range args {
		n += 4 + len(a)
	}
	return n
}

// AppendRequest appends the request payload holding args (the count, then
// each string after its length) to dst and returns the extended slice. It
// does not check MaxArgs or a string's length against 32 bits: a caller
// sending to a server checks RequestSize against the codec's maximum.
func AppendRequest(dst []byte, args ...[]byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(args)))
	for _, a := range args {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(a)))
		dst = append(dst, a...)
	}
	return dst
}

// AppendStatus appends the 4 bytes of status st: the start of a reply
// payload, before its data.
func AppendStatus(dst []byte, st Status) []byte {
	return binary.LittleEndian.AppendUint32(dst, uint32(st))
}

// AppendReply appends the reply payload of status st and data to dst and
// returns the extended slice.
func AppendReply(dst []byte, st Status, data []byte) []byte {
	return append(AppendStatus(dst, st), data...)
}

// ParseReply splits a reply payload into its status and data; data aliases
// payload. A payload shorter than the 4-byte status is an error. Any status
// code is accepted: the caller decides what an unknown one means.
func ParseReply(payload []byte) (Status, []byte, error) {
	if len(payload) < 4 {
		return 0, nil, fmt.Errorf("kvproto: a %d-byte reply, too short for the 4-byte status", len(payload))
	}
	return Status(binary.LittleEndian.Uint32(payload)), payload[4:], nil
}
