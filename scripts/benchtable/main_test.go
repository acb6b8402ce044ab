package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const rounds = `goos: linux
BenchmarkPingPong/impl=net-2         	    6122	     30000 ns/op	   1.29 MB/s	     25000 p99-ns
BenchmarkPingPong/impl=netcore-2     	    5802	     20000 ns/op	   1.90 MB/s	     50000 p99-ns
BenchmarkPingPong/impl=net-2         	    6122	     32000 ns/op	   1.25 MB/s	     25000 p99-ns
BenchmarkPingPong/impl=netcore-2     	    5802	     24000 ns/op	   1.70 MB/s	     50000 p99-ns
BenchmarkPingPong/impl=net-2         	    6122	     34000 ns/op	   1.20 MB/s	     25000 p99-ns
BenchmarkPingPong/impl=netcore-2     	    5802	     22000 ns/op	   1.80 MB/s	     50000 p99-ns
    bench_test.go:12: some log line
BenchmarkEcho/conns=64/impl=gnet-2   	    1000	      1500 ns/op	     2048 srv-peak-rss-B
BenchmarkEcho/conns=64/impl=net-2    	    1000	      3000 ns/op	  3145728 srv-peak-rss-B
PASS
`

func TestTable(t *testing.T) {
	r, err := parse(strings.NewReader(rounds))
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	if err := r.table(&got, "net", []string{"ns/op", "MB/s", "p99-ns", "srv-peak-rss-B"}); err != nil {
		t.Fatal(err)
	}
	want := `| benchmark | impl | ns/op | MB/s | p99-ns | srv-peak-rss-B |
| --- | --- | --- | --- | --- | --- |
| PingPong | net | 32.0 µs | 1.25 | 25.0 µs | - |
| PingPong | netcore | 22.0 µs (1.45x) | 1.80 (1.44x) | 50.0 µs (0.50x) | - |
| Echo/conns=64 | net | 3.00 µs | - | - | 3.00 MiB |
| Echo/conns=64 | gnet | 1.50 µs (2.00x) | - | - | 2.00 KiB (1536.00x) |
`
	if diff := cmp.Diff(want, got.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct{ name, group, impl string }{
		{"BenchmarkEcho/conns=64/impl=net-2", "Echo/conns=64", "net"},
		{"BenchmarkAccept/impl=netcore-blocking-16", "Accept", "netcore-blocking"},
		{"BenchmarkX/impl=a/size=1KiB", "X/size=1KiB", "a"},
		{"BenchmarkNoImpl", "NoImpl", ""},
	} {
		if g, i := split(tc.name); g != tc.group || i != tc.impl {
			t.Errorf("split(%q) = %q, %q, want %q, %q", tc.name, g, i, tc.group, tc.impl)
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, in := range []string{
		"",
		"PASS\n",
		"BenchmarkX/impl=net-2 10 12 ns/op 7\n",
		"BenchmarkX/impl=net-2 10 twelve ns/op\n",
	} {
		if _, err := parse(strings.NewReader(in)); err == nil {
			t.Errorf("parse(%q) succeeded, want an error", in)
		}
	}
	r, err := parse(strings.NewReader(rounds))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := r.table(&out, "net", []string{"furlongs/op"}); err == nil || !strings.Contains(err.Error(), `"furlongs/op"`) {
		t.Errorf("table with an unknown unit: %v, want an error quoting it", err)
	}
	out.Reset()
	if err := r.table(&out, "net", []string{"furlongs/op", "ns/op"}); err != nil || strings.Contains(out.String(), "furlongs") || !strings.Contains(out.String(), "ns/op") {
		t.Errorf("table with a known and an unknown unit: %v\n%s\nwant the known one's column only", err, out.String())
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		unit string
		want string
	}{
		{950, "ns/op", "950 ns"},
		{12345, "ns/op", "12.3 µs"},
		{2.5e6, "p99-ns", "2.50 ms"},
		{6, "syscalls/op", "6"},
		{5.544, "syscalls/op", "5.54"},
		{0.00125, "srv-allocs/op", "0.00125"},
		{81234, "rt/s", "81.2k"},
		{1.5e6, "rt/s", "1.50M"},
		{800, "B/op", "800 B"},
		{1536, "srv-idle-rss-B/conn", "1.50 KiB"},
	} {
		if got := format(tc.v, tc.unit); got != tc.want {
			t.Errorf("format(%v, %q) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}
