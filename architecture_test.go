package scorekeeper_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goPackage is what `go list -json` says of a package of the module
// (non-test files only).
type goPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// listPackages runs `go list -json ./...` from the module root: every
// package of the module, with its direct imports and all its deps.
func listPackages(t *testing.T) map[string]goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", exitStderr(err))
	pkgs := map[string]goPackage{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPackage
		err := dec.Decode(&p)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		pkgs[p.ImportPath] = p
	}
	require.Contains(t, pkgs, "scorekeeper/web", "go list ran in the wrong directory")
	return pkgs
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// Ensure the dependency rule of docs/architecture.md: the root package
// holds the domain and the ports; the HTTP adapter (web) is a leaf only
// the wiring (app, cmd) imports; web and metrics reach the database only
// through the root's Store port, never db itself, even indirectly; the
// worker does not import db (its activities do, as the write side).
func TestArchitecture_Dependencies(t *testing.T) {
	pkgs := listPackages(t)
	for path, p := range pkgs {
		if slices.Contains(p.Imports, "scorekeeper/web") {
			require.True(t, path == "scorekeeper/app" || strings.HasPrefix(path, "scorekeeper/cmd/"),
				"%s imports web: only app and cmd may (the HTTP adapter is a leaf)", path)
		}
	}
	for _, path := range []string{"scorekeeper/web", "scorekeeper/metrics"} {
		require.False(t, slices.Contains(pkgs[path].Deps, "scorekeeper/db"), "%s depends on db: read through scorekeeper.Store", path)
	}
	require.False(t, slices.Contains(pkgs["scorekeeper/worker"].Imports, "scorekeeper/db"),
		"worker imports db: read through scorekeeper.Store")
	for _, dep := range pkgs["scorekeeper"].Deps {
		require.False(t, strings.HasPrefix(dep, "scorekeeper/"), "the root package depends on %s: it must depend on nothing of the module", dep)
	}
}

// Ensure nothing outside db (which implements the Store) and app (which
// opens the database and wires it) holds a *bun.DB: every other package
// takes the root's Store port, or db.Store where it writes.
func TestArchitecture_NoRawDatabaseOutsideStore(t *testing.T) {
	pkgs := listPackages(t)
	fset := token.NewFileSet()
	checked := 0
	for path, p := range pkgs {
		if path == "scorekeeper/db" || strings.HasPrefix(path, "scorekeeper/db/") || path == "scorekeeper/app" {
			continue
		}
		for _, name := range p.GoFiles {
			file := filepath.Join(p.Dir, name)
			f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
			require.NoError(t, err)
			checked++
			bunName := ""
			for _, imp := range f.Imports {
				if imp.Path.Value == `"github.com/uptrace/bun"` {
					bunName = "bun"
					if imp.Name != nil {
						bunName = imp.Name.Name
					}
				}
			}
			if bunName == "" {
				continue
			}
			ast.Inspect(f, func(n ast.Node) bool {
				st, ok := n.(*ast.StructType)
				if !ok {
					return true
				}
				for _, field := range st.Fields.List {
					if isPointerTo(field.Type, bunName, "DB") {
						t.Errorf("%s: a *bun.DB field outside db and app; hold a scorekeeper.Store (or *db.Store)", fset.Position(field.Pos()))
					}
				}
				return true
			})
		}
	}
	require.Positive(t, checked)
}

// isPointerTo reports whether e is *pkg.name.
func isPointerTo(e ast.Expr, pkg, name string) bool {
	star, ok := e.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg && sel.Sel.Name == name
}
