package netcore

import (
	"errors"
	"runtime"
)

// ErrLinuxOnly is what the entry points that need the Linux kernel
// (Listen, Dial, ListenConfig.Listen, Dialer.DialContext and the binary
// form of Sockaddr) return, inside their error, when netcore is built for
// another platform. It exists on Linux too, so code that checks for it
// compiles everywhere; there it is never returned.
var ErrLinuxOnly = errors.New("netcore: this needs Linux; built for " + runtime.GOOS)
