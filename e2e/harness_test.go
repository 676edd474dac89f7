// Package e2e runs the real system: the scorekeeper binary as separate
// worker (and web) processes, a real Temporal dev server, real Postgres and
// the mock upstream/provider, and checks the design's invariants from the
// outside. `make test` runs it.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
)

// binary is the scorekeeper binary built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scorekeeper-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "scorekeeper")
	build := exec.Command("go", "build", "-o", binary, "../cmd/scorekeeper")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build scorekeeper:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// temporalCLI finds the project-local Temporal CLI that `make` installs.
func temporalCLI(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("TEMPORAL_CLI"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", ".tools", "bin", "temporal")
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("Temporal CLI not found at %s: run `make temporal` (or `make test`, which installs it)", p)
	}
	return p
}

// startTemporal starts a dev server on a free port with the UserId search
// attribute and one task-queue partition, as `make run` does.
func startTemporal(tb testing.TB) (*testsuite.DevServer, client.Client) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var logs bytes.Buffer
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: temporalCLI(tb),
		ClientOptions: &client.Options{
			Namespace: "default",
		},
		LogLevel: "error",
		ExtraArgs: []string{
			"--search-attribute", "UserId=Keyword",
			"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
			"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
		},
		Stdout: &logs,
		Stderr: &logs,
	})
	require.NoError(tb, err, "start Temporal dev server")
	tb.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			tb.Logf("stop dev server: %v", err)
		}
	})
	return srv, srv.Client()
}

// proc is a scorekeeper subprocess whose output is kept for failure logs:
// in memory, or in a file (see startProcToFile).
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	file string
	done chan struct{}
}

// output is what the process wrote so far.
func (p *proc) output() string {
	if p.file != "" {
		b, _ := os.ReadFile(p.file)
		return string(b)
	}
	return p.out.String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProc runs `scorekeeper <command>` with env on top of a clean
// environment, and stops it when the test ends.
func startProc(tb testing.TB, name, command string, env map[string]string) *proc {
	tb.Helper()
	return startProcOut(tb, name, command, env, "")
}

// startProcToFile is startProc with the process's output written to a file
// in the test's temporary directory rather than kept in memory: under load
// a process that logs a line per request would otherwise spend the test
// process's CPU (the load generator's) on keeping its lines.
func startProcToFile(tb testing.TB, name, command string, env map[string]string) *proc {
	tb.Helper()
	return startProcOut(tb, name, command, env, filepath.Join(tb.TempDir(), name+".log"))
}

func startProcOut(tb testing.TB, name, command string, env map[string]string, file string) *proc {
	tb.Helper()
	cmd := exec.Command(binary, command)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{name: name, cmd: cmd, out: &syncBuffer{}, file: file, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if file != "" {
		f, err := os.Create(file)
		require.NoError(tb, err)
		defer f.Close() // the child has its own descriptor
		cmd.Stdout, cmd.Stderr = f, f
	}
	require.NoError(tb, cmd.Start())
	go func() { _ = cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.stop()
		if tb.Failed() {
			tb.Logf("--- %s output (last 4000 bytes):\n%s", name, tail(p.output(), 4000))
		}
	})
	return p
}

// kill sends SIGKILL: the process gets no chance to clean up.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks the process to shut down and waits for it.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := strings.IndexByte(s[len(s)-n:], '\n')
	return s[len(s)-n+i+1:]
}

// eventually polls cond until it holds or the timeout passes.
func eventually(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(time.Second)
	}
	tb.Fatalf("timed out after %s waiting for %s: %s", timeout, what, last)
}
