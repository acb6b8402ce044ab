package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStats is what /proc says about a process.
type procStats struct {
	FDs     int   // open descriptors (/proc/PID/fd)
	RSS     int64 // resident memory now, bytes (VmRSS)
	HWM     int64 // peak resident memory, bytes (VmHWM)
	Threads int   // OS threads (Threads)
}

// readProc reads pid's descriptors and memory from /proc.
func readProc(pid int) (procStats, error) {
	var ps procStats
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return ps, err
	}
	ps.FDs = len(fds)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	return ps, parseStatus(status, &ps)
}

// parseStatus fills ps's memory and thread figures from the text of
// /proc/PID/status ("VmHWM:	   12345 kB").
func parseStatus(status []byte, ps *procStats) error {
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			ps.RSS = n << 10
		case "VmHWM":
			ps.HWM = n << 10
		case "Threads":
			ps.Threads = int(n)
		default:
			continue
		}
		found++
	}
	if found != 3 {
		return fmt.Errorf("/proc status without VmRSS, VmHWM and Threads:\n%s", status)
	}
	return nil
}
