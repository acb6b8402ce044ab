package netcore

import "syscall"

// Family returns syscall.AF_INET or syscall.AF_INET6, or 0 (AF_UNSPEC) for
// the zero Sockaddr. (On Windows there is no golang.org/x/sys/unix, so
// SockaddrFromUnix and Sockaddr.Unix do not exist there.)
func (sa Sockaddr) Family() int {
	switch sa.family {
	case family4:
		return syscall.AF_INET
	case family6:
		return syscall.AF_INET6
	}
	return syscall.AF_UNSPEC
}
