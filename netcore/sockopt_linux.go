package netcore

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// setInt wraps setsockopt(2) for an int option.
func setInt(s, level, name, v int) error {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(int32(v)))
	return os.NewSyscallError("setsockopt", sys.Setsockopt(s, level, name, b[:]))
}

// getInt wraps getsockopt(2) for an int option.
func getInt(s, level, name int) (int, error) {
	var b [4]byte
	if _, err := sys.Getsockopt(s, level, name, b[:]); err != nil {
		return 0, os.NewSyscallError("getsockopt", err)
	}
	return int(int32(binary.NativeEndian.Uint32(b[:]))), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// setDevice binds s to a network interface (SO_BINDTODEVICE).
// getDevice returns the interface s is bound to (SO_BINDTODEVICE), "" for
// none.
func getDevice(s int) (string, error) {
	var b [unix.IFNAMSIZ]byte
	n, err := sys.Getsockopt(s, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, b[:])
	if err != nil {
		return "", os.NewSyscallError("getsockopt", err)
	}
	return strings.TrimRight(string(b[:n]), "\x00"), nil
}

func setDevice(s int, device string) error {
	return os.NewSyscallError("setsockopt", sys.Setsockopt(s, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, []byte(device)))
}

// setKeepAlive turns SO_KEEPALIVE on or off; with period > 0 it also sets
// the idle time before the first probe and the interval between probes
// (TCP_KEEPIDLE, TCP_KEEPINTVL), rounded up to whole seconds.
func setKeepAlive(s int, on bool, period time.Duration) error {
	if err := setInt(s, unix.SOL_SOCKET, unix.SO_KEEPALIVE, boolInt(on)); err != nil || !on || period <= 0 {
		return err
	}
	secs := int((period + time.Second - 1) / time.Second)
	if err := setInt(s, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs); err != nil {
		return err
	}
	return setInt(s, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs)
}

// setLinger sets SO_LINGER: sec < 0 turns lingering off (close returns at
// once and the kernel sends what is queued in the background, the default);
// sec == 0 makes close discard unsent data and reset the connection; sec >
// 0 makes close wait up to sec seconds for unsent data to go out.
func setLinger(s, sec int) error {
	var b [8]byte // struct linger { int l_onoff; int l_linger; }
	if sec >= 0 {
		binary.NativeEndian.PutUint32(b[0:4], 1)
		binary.NativeEndian.PutUint32(b[4:8], uint32(int32(sec)))
	}
	return os.NewSyscallError("setsockopt", sys.Setsockopt(s, unix.SOL_SOCKET, unix.SO_LINGER, b[:]))
}

// errNotUnix is PeerCred's error on a TCP connection.
var errNotUnix = errors.New("netcore: peer credentials (SO_PEERCRED) exist only on unix sockets")

// peerCred reads SO_PEERCRED (struct ucred: pid, uid, gid) of s, whose
// peer's address is peer.
func peerCred(s int, peer Sockaddr) (Ucred, error) {
	if !peer.IsUnix() {
		return Ucred{}, errNotUnix
	}
	var b [unix.SizeofUcred]byte
	if _, err := sys.Getsockopt(s, unix.SOL_SOCKET, unix.SO_PEERCRED, b[:]); err != nil {
		return Ucred{}, os.NewSyscallError("getsockopt", err)
	}
	return Ucred{
		PID: int32(binary.NativeEndian.Uint32(b[0:4])),
		UID: binary.NativeEndian.Uint32(b[4:8]),
		GID: binary.NativeEndian.Uint32(b[8:12]),
	}, nil
}
