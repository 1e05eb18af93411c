package kubetest_test

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/userspace-cni/userspace/tests/kubetest"
)

// env is the API server shared by the package's tests; envErr why there is
// none.
var (
	env    *kubetest.Env
	envErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	env, envErr = kubetest.Start()
	if envErr != nil {
		// Tests that need the API server fail in needEnv; the others
		// still run.
		fmt.Fprintln(os.Stderr, "kubetest:", envErr)
		os.Exit(m.Run())
	}
	stop := sync.OnceValue(env.Stop)
	// envtest's processes do not die with the test binary: stop them on
	// a signal, and before go test's timeout panic, which skips defers.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		_ = stop()
		os.Exit(1)
	}()
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > 0 {
			time.AfterFunc(max(d-10*time.Second, d*9/10), func() {
				fmt.Fprintln(os.Stderr, "kubetest: test timeout close, stopping the API server")
				_ = stop()
			})
		}
	}
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the API server:", err)
		code = 1
	}
	os.Exit(code)
}

// needEnv returns the API server, or fails the test.
func needEnv(t testing.TB) *kubetest.Env {
	t.Helper()
	kubetest.Require(t, envErr)
	return env
}
