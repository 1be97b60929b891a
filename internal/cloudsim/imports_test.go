package cloudsim

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// allowedImporters may import cloudsim from non-test code: the standalone
// command (and, later, the all-in-one environment and benchmarks).
var allowedImporters = []string{"cmd/kuryr-cloudsim", "internal/cloudsim", "test/", "hack/"}

// TestNoProductionImport fails when production code imports cloudsim.
func TestNoProductionImport(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	const self = "github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		for _, a := range allowedImporters {
			if strings.HasPrefix(rel, a) {
				return nil
			}
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == self {
				t.Errorf("%s imports %s: only tests, cmd/kuryr-cloudsim and the all-in-one may", rel, self)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no Go file checked: wrong repository root?")
	}
}
