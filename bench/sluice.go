package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// instance is the Sluice instance name of every bench run; the source is
// always named "bench", so the slot is sluice_bench_bench in each database.
const (
	instance   = "bench"
	sourceName = "bench"
)

const specTemplate = `kind: Source
name: %s
postgres:
  dsn: ${env:SRC_DSN}
  tables: [%s]
  heartbeat_interval: 1s
snapshot: never
`

// sluiceProc is one `sluice server` subprocess with its embedded broker.
type sluiceProc struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited and been reaped
	started  time.Time     // just before the process was started
	addr     string        // the embedded broker's host:port
	logPath  string
	logStart int64 // size of the log before this run: its lines start there
}

// startSluice runs `sluice server` for one source capturing tables of the
// database at dsn. Its data directory, spec and log live in the work
// directory under scenario, so a second start of the same scenario resumes
// from the stored checkpoint. It returns once the broker accepts connections.
func (e *env) startSluice(ctx context.Context, scenario, dsn string, tables []string) (*sluiceProc, error) {
	specText := fmt.Sprintf(specTemplate, sourceName, strings.Join(tables, ", "))
	return e.launchSluice(ctx, scenario, specText, "SRC_DSN="+dsn)
}

// launchSluice runs `sluice server` on the specs of specText, with env
// added to its environment (the values of the specs' ${env:...}
// references). Its data directory, spec and log live in the work directory
// under scenario: a second start of the same scenario reuses the data
// directory, and appends to the log. Sluice keeps the specs it is given in
// its Kafka, so a later start on the same data directory still runs the
// earlier ones too. It returns once the broker accepts connections.
func (e *env) launchSluice(ctx context.Context, scenario, specText string, env ...string) (*sluiceProc, error) {
	dir := filepath.Join(e.work, scenario)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sluice dir: %w", err)
	}
	specPath := filepath.Join(dir, "specs.yaml")
	if err := os.WriteFile(specPath, []byte(specText), 0o644); err != nil {
		return nil, fmt.Errorf("write spec: %w", err)
	}
	port, err1 := freePort()
	apiPort, err2 := freePort() // not the default 8080: it may be taken
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	p := &sluiceProc{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), logPath: filepath.Join(dir, "sluice.log"),
		done: make(chan struct{})}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sluice log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	if fi, err := logf.Stat(); err == nil {
		p.logStart = fi.Size()
	}
	p.cmd = exec.Command(e.bin, "server", "--instance", instance, "--data-dir", filepath.Join(dir, "data"),
		"--kafka-listen", p.addr, "--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort)),
		"-f", specPath, "--log-level", e.logLevel)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = childAttr()
	if err := p.spawn(); err != nil {
		return nil, fmt.Errorf("start sluice: %w", err)
	}
	if err := p.waitListening(ctx); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// spawn starts the process from a goroutine whose OS thread stays locked
// until the child exits: the parent-death signal (childAttr) fires when the
// forking thread ends. The goroutine ends when the child has exited.
func (p *sluiceProc) spawn() error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(p.done)
		p.started = time.Now()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = p.cmd.Wait() // the outcome is in the log; stop reports nothing more useful
	}()
	return <-started
}

// waitListening polls the broker port until it accepts a connection.
func (p *sluiceProc) waitListening(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", p.addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-p.done:
			return fmt.Errorf("sluice exited at startup:\n%s", p.logTail(20))
		case <-ctx.Done():
			return fmt.Errorf("sluice broker not listening on %s: %w\n%s", p.addr, ctx.Err(), p.logTail(20))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// exited reports whether the process has ended; a run that ends on its own
// is a failure, explained by the log's tail.
func (p *sluiceProc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("sluice exited unexpectedly:\n%s", p.logTail(20))
	default:
		return nil
	}
}

// stop sends SIGTERM, waits up to 20 seconds for a clean stop, then kills.
// Calling it again does nothing.
func (p *sluiceProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		progress("sluice did not stop within 20s of SIGTERM; killing it")
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// peakRSS returns the process's peak resident set size (VmHWM), in bytes.
func (p *sluiceProc) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read sluice status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// cpuTime returns the user+system CPU time the process has used so far.
func (p *sluiceProc) cpuTime() (time.Duration, error) {
	return procCPU(p.cmd.Process.Pid)
}

// procCPU reads utime+stime of a process from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read /proc stat: %w", err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// logTail returns the last lines of the process's log.
func (p *sluiceProc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
