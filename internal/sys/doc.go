// Package sys is netcore's syscall seam: every system call netcore makes on a
// socket goes through the functions here. They call the kernel directly
// (unix.Syscall with raw sockaddr bytes, so there is no hidden
// getsockopt(SO_PROTOCOL) as in x/sys's Accept4 and Getsockname), count every
// call, and consult an optional Filter that tests, fuzz targets and
// benchmarks install to inject errors, shorten reads and writes, or watch.
//
// What the seam does not see: the calls Go's runtime makes for a descriptor
// once netcore hands it to the poller with os.NewFile (fcntl(F_GETFL),
// epoll_ctl, and the final close(2) when the last in-flight call leaves).
// netcore counts a Close here when it asks for one.
package sys
