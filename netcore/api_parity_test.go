package netcore_test

import (
	"bytes"
	"go/ast"
	"go/build"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAPIParity reads the package's source as it builds for Linux, macOS
// and Windows and checks that every exported identifier exists on each
// with the same signature: functions and methods (parameter names
// aside), types, exported struct fields, constants and variables. A Linux
// method added without its off-Linux stand-in fails here, on Linux,
// without cross-compiling. The one exception is what names
// golang.org/x/sys/unix, which has no Windows build.
func TestAPIParity(t *testing.T) {
	linux := exportedAPI(t, "linux")
	if len(linux) < 50 {
		t.Fatalf("found only %d exported identifiers for linux: the scan is broken", len(linux))
	}
	unixOnly := func(s string) bool { return strings.Contains(s, "unix.") }
	for _, goos := range []string{"darwin", "windows"} {
		want := linux
		if goos == "windows" {
			want = slices.DeleteFunc(slices.Clone(linux), unixOnly)
		}
		if diff := cmp.Diff(want, exportedAPI(t, goos)); diff != "" {
			t.Errorf("exported API for %s differs from Linux's (-linux +%s):\n%s", goos, goos, diff)
		}
	}
}

// exportedAPI lists the exported declarations of the package's non-test
// files that build for goos, one line each, sorted.
func exportedAPI(t *testing.T, goos string) []string {
	t.Helper()
	ctx := build.Default
	ctx.GOOS = goos
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var api []string
	show := func(n ast.Node) string {
		var b bytes.Buffer
		if err := printer.Fprint(&b, fset, n); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		if ok, err := ctx.MatchFile(".", name); err != nil {
			t.Fatal(err)
		} else if !ok {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				sig := "func "
				if d.Recv != nil {
					recv := d.Recv.List[0].Type
					base := recv
					if star, ok := base.(*ast.StarExpr); ok {
						base = star.X
					}
					if id, ok := base.(*ast.Ident); !ok || !id.IsExported() {
						continue
					}
					sig += "(" + show(recv) + ") "
				}
				api = append(api, sig+d.Name.Name+strings.TrimPrefix(show(unnamed(d.Type)), "func"))
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						if !spec.Name.IsExported() {
							continue
						}
						st, ok := spec.Type.(*ast.StructType)
						if !ok {
							api = append(api, "type "+spec.Name.Name+" "+show(spec.Type))
							continue
						}
						api = append(api, "type "+spec.Name.Name+" struct")
						for _, field := range st.Fields.List {
							for _, n := range field.Names {
								if n.IsExported() {
									api = append(api, "field "+spec.Name.Name+"."+n.Name+" "+show(field.Type))
								}
							}
						}
					case *ast.ValueSpec:
						for _, n := range spec.Names {
							if n.IsExported() {
								api = append(api, d.Tok.String()+" "+n.Name)
							}
						}
					}
				}
			}
		}
	}
	slices.Sort(api)
	return api
}

// unnamed returns ft with its parameter and result names dropped (a
// group "a, b int" becomes "int, int"), so that signatures compare by
// their types alone.
func unnamed(ft *ast.FuncType) *ast.FuncType {
	strip := func(fl *ast.FieldList) *ast.FieldList {
		if fl == nil {
			return nil
		}
		out := &ast.FieldList{}
		for _, f := range fl.List {
			for range max(1, len(f.Names)) {
				out.List = append(out.List, &ast.Field{Type: f.Type})
			}
		}
		return out
	}
	return &ast.FuncType{Params: strip(ft.Params), Results: strip(ft.Results)}
}
