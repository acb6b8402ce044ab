// Command benchtable reads Go benchmark results (the text `go test -bench`
// prints, any number of rounds) and prints a markdown table of medians, one
// row per benchmark and implementation, with each value's ratio against a
// base implementation.
//
// Implementations are the sub-benchmark path element impl=NAME
// (BenchmarkEcho/conns=64/impl=net-2). A ratio above 1 always means better
// than the base: base/value for times, sizes and counts per op, value/base
// for rates (units ending in /s).
//
//	go run ./scripts/benchtable [-base net] [-metrics ns/op,p99-ns] results.txt...
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	base := flag.String("base", "net", "the implementation ratios are taken against")
	metrics := flag.String("metrics", "", "comma-separated units to show, in this order (default: every unit, in order of appearance)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: benchtable [-base impl] [-metrics units] [results.txt...] (stdin without files)")
		flag.PrintDefaults()
	}
	flag.Parse()
	var inputs []io.Reader
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		defer f.Close()
		inputs = append(inputs, f)
	}
	if len(inputs) == 0 {
		inputs = append(inputs, os.Stdin)
	}
	r, err := parse(io.MultiReader(inputs...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	var units []string
	if *metrics != "" {
		units = strings.Split(*metrics, ",")
	}
	if err := r.table(os.Stdout, *base, units); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

// results are every value read, by benchmark (without its impl element),
// implementation and unit, each list in order of first appearance.
type results struct {
	groups, impls, units []string
	values               map[key][]float64
}

type key struct{ group, impl, unit string }

// parse reads benchmark result lines and ignores every other line.
func parse(r io.Reader) (*results, error) {
	res := &results{values: map[key][]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // not a result line (a benchmark's log output)
		}
		if len(f)%2 != 0 {
			return nil, fmt.Errorf("line %d: %q: values and units do not pair up", line, sc.Text())
		}
		group, impl := split(f[0])
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: value %q: %v", line, f[i], err)
			}
			unit := f[i+1]
			res.groups = appendNew(res.groups, group)
			res.impls = appendNew(res.impls, impl)
			res.units = appendNew(res.units, unit)
			k := key{group, impl, unit}
			res.values[k] = append(res.values[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(res.groups) == 0 {
		return nil, errors.New("no benchmark results in the input")
	}
	return res, nil
}

// split takes "BenchmarkEcho/conns=64/impl=net-2" apart into
// "Echo/conns=64" and "net".
func split(name string) (group, impl string) {
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i] // the GOMAXPROCS suffix
		}
	}
	name = strings.TrimPrefix(name, "Benchmark")
	var parts []string
	for _, p := range strings.Split(name, "/") {
		if v, ok := strings.CutPrefix(p, "impl="); ok {
			impl = v
			continue
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "/"), impl
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// table writes the markdown table: a row per benchmark and
// implementation, a column per unit.
func (r *results) table(w io.Writer, base string, units []string) error {
	if units == nil {
		units = r.units
	}
	// A unit only some benchmarks report (conns/s, say) may be absent
	// from a run of others: it is left out; none present is an error.
	var missing []string
	units = slices.DeleteFunc(slices.Clone(units), func(u string) bool {
		if !slices.Contains(r.units, u) {
			missing = append(missing, strconv.Quote(u))
			return true
		}
		return false
	})
	if len(units) == 0 {
		return fmt.Errorf("no results in unit %s (have %s)", strings.Join(missing, ", "), strings.Join(r.units, ", "))
	}
	fmt.Fprintf(w, "| benchmark | impl | %s |\n", strings.Join(units, " | "))
	fmt.Fprintf(w, "| --- | --- |%s\n", strings.Repeat(" --- |", len(units)))
	for _, g := range r.groups {
		for _, impl := range r.impls {
			cells := make([]string, len(units))
			seen := false
			for i, u := range units {
				v, ok := r.median(key{g, impl, u})
				if !ok {
					cells[i] = "-"
					continue
				}
				seen = true
				cells[i] = format(v, u)
				if b, ok := r.median(key{g, base, u}); ok && impl != base {
					if ratio, ok := better(v, b, u); ok {
						cells[i] += fmt.Sprintf(" (%.2fx)", ratio)
					}
				}
			}
			if seen {
				fmt.Fprintf(w, "| %s | %s | %s |\n", g, impl, strings.Join(cells, " | "))
			}
		}
	}
	return nil
}

func (r *results) median(k key) (float64, bool) {
	vs := slices.Clone(r.values[k])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	if n := len(vs); n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2, true
	}
	return vs[len(vs)/2], true
}

// better is how many times better v is than base in unit: higher is better
// for rates, lower for everything else.
func better(v, base float64, unit string) (float64, bool) {
	if v == 0 || base == 0 {
		return 0, false
	}
	if strings.HasSuffix(unit, "/s") {
		return v / base, true
	}
	return base / v, true
}

// format writes v in unit with three significant digits, as a time for
// nanosecond units, in KiB/MiB for byte units.
func format(v float64, unit string) string {
	num, _, _ := strings.Cut(unit, "/")
	switch {
	case num == "ns" || strings.HasSuffix(num, "-ns"):
		switch {
		case v >= 1e9:
			return sig3(v/1e9) + " s"
		case v >= 1e6:
			return sig3(v/1e6) + " ms"
		case v >= 1e3:
			return sig3(v/1e3) + " µs"
		}
		return sig3(v) + " ns"
	case num == "B" || strings.HasSuffix(num, "-B"):
		switch {
		case v >= 1<<30:
			return sig3(v/(1<<30)) + " GiB"
		case v >= 1<<20:
			return sig3(v/(1<<20)) + " MiB"
		case v >= 1<<10:
			return sig3(v/(1<<10)) + " KiB"
		}
		return sig3(v) + " B"
	}
	switch {
	case v >= 1e6:
		return sig3(v/1e6) + "M"
	case v >= 1e4:
		return sig3(v/1e3) + "k"
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64) // a count stays exact
	}
	return sig3(v)
}

// sig3 formats v with three significant digits.
func sig3(v float64) string {
	digits := 2 - int(math.Floor(math.Log10(math.Abs(v))))
	if v == 0 || digits < 0 {
		digits = 0
	}
	return strconv.FormatFloat(v, 'f', digits, 64)
}
