package netcore

import "encoding/binary"

// Htons converts x from host to network (big-endian) byte order: it returns
// the uint16 whose bytes in memory are x's bytes, most significant first.
// On a big-endian machine it returns x unchanged.
func Htons(x uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], x)
	return binary.NativeEndian.Uint16(b[:])
}

// Ntohs converts x from network (big-endian) to host byte order. It is the
// same function as Htons: swapping twice restores the value.
func Ntohs(x uint16) uint16 { return Htons(x) }

// Htonl converts x from host to network (big-endian) byte order: it returns
// the uint32 whose bytes in memory are x's bytes, most significant first.
func Htonl(x uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], x)
	return binary.NativeEndian.Uint32(b[:])
}

// Ntohl converts x from network (big-endian) to host byte order. It is the
// same function as Htonl.
func Ntohl(x uint32) uint32 { return Htonl(x) }

// Htonll converts x from host to network (big-endian) byte order: it returns
// the uint64 whose bytes in memory are x's bytes, most significant first.
func Htonll(x uint64) uint64 {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], x)
	return binary.NativeEndian.Uint64(b[:])
}

// Ntohll converts x from network (big-endian) to host byte order. It is the
// same function as Htonll.
func Ntohll(x uint64) uint64 { return Htonll(x) }
