package engine_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"cotd/configs"
	"cotd/engine"
	et "cotd/engine/enginetest"
)

// The test binary doubles as a server process for the tests that need one
// of their own: a descriptor limit, or a kill -9.
const (
	childNofileEnv = "COTD_TEST_CHILD_NOFILE"
	childAddrEnv   = "COTD_TEST_CHILD_ADDR"
)

func TestMain(m *testing.M) {
	if n := os.Getenv(childNofileEnv); n != "" {
		os.Exit(childServer(n, os.Getenv(childAddrEnv)))
	}
	os.Exit(m.Run())
}

// childServer serves plain TCP on addr with the descriptor limit nofile,
// prints the bound address on stdout, and runs until SIGTERM. Its exit
// status is Run's verdict.
func childServer(nofile, addr string) int {
	n, err := strconv.ParseUint(nofile, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: n}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := configs.Default()
	cfg.TCP.Addr, cfg.TLS.Addr, cfg.Admin.Addr = addr, "", ""
	if m := os.Getenv("COTD_TEST_CHILD_MAXCONN"); m != "" {
		cfg.Limits.MaxConnections, _ = strconv.Atoi(m)
	}
	srv, err := engine.New(cfg, zerolog.New(os.Stderr).Level(zerolog.InfoLevel))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		<-srv.Ready()
		fmt.Println(srv.Addr(engine.ListenerTCP))
	}()
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

type child struct {
	cmd    *exec.Cmd
	addr   string
	stderr *et.SyncBuffer
	exited chan error
}

// startChild runs the test binary as a server with descriptor limit
// nofile on addr, and waits for its address.
func startChild(t *testing.T, nofile int, addr string, env ...string) *child {
	t.Helper()
	c := &child{stderr: &et.SyncBuffer{}, exited: make(chan error, 1)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", childNofileEnv, nofile), childAddrEnv+"="+addr)
	c.cmd.Env = append(c.cmd.Env, env...)
	c.cmd.Stderr = c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, out)
		c.exited <- c.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.exited
	})
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("the server did not start: %s", c.stderr.String())
		}
		c.addr = l
	case <-time.After(et.Wait):
		t.Fatalf("the server did not start in time: %s", c.stderr.String())
	}
	return c
}

// With a descriptor limit of 200, the default max_connections (200 less
// a reserve of 64) closes connections beyond it at accept: accept never
// meets EMFILE (which stops gnet's engine), and the clients already
// connected are still served.
func TestDescriptorLimitRefusesInsteadOfStopping(t *testing.T) {
	const nofile, flood = 200, 300
	c := startChild(t, nofile, "127.0.0.1:0")
	a, b := et.Dial(t, c.addr), et.Dial(t, c.addr)
	a.Send(et.SA("A", "ALPHA", "a-f-G-U-C"))
	b.Expect("a's SA", et.UID("A"))

	var closed atomic.Int64
	for range flood {
		conn, err := net.DialTimeout("tcp", c.addr, et.Wait)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		go func() {
			_, _ = io.Copy(io.Discard, conn) // returns at the server's close
			closed.Add(1)
		}()
	}
	// Every connection past the limit is closed at once; this waits until
	// the acceptor has seen them all.
	max := nofile - 64
	et.Eventually(t, "the connections past the limit closed", func() bool {
		return closed.Load() >= int64(flood-(max-2))
	})
	a.Send(et.Marker("still-served"))
	b.Expect("a marker after the flood", et.UID("still-served"))
	select {
	case err := <-c.exited:
		t.Fatalf("the server exited (%v): %s", err, c.stderr.String())
	default:
	}
	if !strings.Contains(c.stderr.String(), "connection limit reached") {
		t.Error("the refusals were not logged")
	}
	// 136 connections under a limit of 200 leave 64 descriptors: a
	// somaxconn-deep queue accepted at once would take them all.
	if !strings.Contains(c.stderr.String(), `"backlog":32`) {
		t.Errorf("the backlog was not lowered to 32: %s", c.stderr.String())
	}
}

// A server killed with established clients is started again on the same
// port at once: the listener sets SO_REUSEADDR, so the previous run's
// sockets do not block the bind.
func TestRestartBindsAtOnceAfterKill(t *testing.T) {
	first := startChild(t, 4096, "127.0.0.1:0")
	for range 3 {
		c := et.Dial(t, first.addr)
		c.Send(et.SA(fmt.Sprintf("U-%p", c), "X", "a-f-G-U-C"))
	}
	probe := et.Dial(t, first.addr)
	probe.Send(et.Ping("probe"))
	probe.Expect("pong", et.Type("t-x-c-t-r"))
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	first.exited <- nil // for its cleanup
	second := startChild(t, 4096, first.addr)
	if second.addr != first.addr {
		t.Fatalf("bound %s, want %s", second.addr, first.addr)
	}
	c := et.Dial(t, second.addr)
	c.Send(et.Ping("after"))
	c.Expect("pong from the restarted server", et.Type("t-x-c-t-r"))
}

// When accept does meet EMFILE (limits.max_connections set above the
// descriptor limit), gnet's engine stops: Run reports ErrStopped and the
// process exits non-zero, so that a service manager restarts it.
func TestEngineStopExitsNonZero(t *testing.T) {
	c := startChild(t, 200, "127.0.0.1:0", "COTD_TEST_CHILD_MAXCONN=1000")
	for range 300 {
		conn, err := net.DialTimeout("tcp", c.addr, et.Wait)
		if err != nil {
			break // the listener is gone
		}
		t.Cleanup(func() { _ = conn.Close() })
	}
	select {
	case err := <-c.exited:
		c.exited <- err // for its cleanup
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit %v, want status 1: %s", err, c.stderr.String())
		}
		if !strings.Contains(c.stderr.String(), engine.ErrStopped.Error()) {
			t.Errorf("the cause was not reported: %s", c.stderr.String())
		}
	case <-time.After(et.Wait):
		t.Fatal("the server kept running past its descriptor limit")
	}
}
