// Package fuzz holds netcore's differential fuzz targets and the properties
// they share: each checks netcore against a trusted oracle (encoding/binary,
// net/netip), never against a copy of netcore's own code.
//
// The seed corpora in testdata/fuzz run as ordinary tests with go test;
// to search for new inputs, run one target at a time:
//
//	go test ./fuzz -run '^$' -fuzz '^FuzzParseSockaddr$' -fuzztime 1m
package fuzz
