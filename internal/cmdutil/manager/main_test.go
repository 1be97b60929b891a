package manager

import (
	"os"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, testenv.Options{CRDDirectoryPaths: []string{"../../../deploy/crds", "../../../deploy/third-party"}}))
}
