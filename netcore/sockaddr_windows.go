package netcore

import "syscall"

// Family returns syscall.AF_INET, syscall.AF_INET6 or syscall.AF_UNIX, or 0
// (AF_UNSPEC) for the zero Sockaddr. (On Windows there is no golang.org/x/sys/unix, so
// SockaddrFromUnix and Sockaddr.Unix do not exist there.)
func (sa Sockaddr) Family() int {
	switch sa.family {
	case family4:
		return syscall.AF_INET
	case family6:
		return syscall.AF_INET6
	case familyUnix:
		return syscall.AF_UNIX
	}
	return syscall.AF_UNSPEC
}
