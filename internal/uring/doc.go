// Package uring is netcore's io_uring layer: a submission and completion
// ring over raw system calls through internal/sys (io_uring_setup,
// io_uring_enter, io_uring_register and the ring mmaps, no cgo), the
// submissions the Loop's io_uring backend makes (multishot accept,
// multishot receive into a provided buffer ring, send, cancel, read of an
// eventfd for wake-ups, close), and Available, which says why io_uring
// cannot be used when it cannot. It builds only on Linux.
package uring
