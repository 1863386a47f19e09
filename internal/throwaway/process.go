package throwaway

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// process is one run of the postgres server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
}

// spawn starts cmd from an OS thread locked for the child's whole life: the parent
// death signal fires when the thread that forked the child ends, not the process.
// The goroutine ends when the child has exited.
func spawn(cmd *exec.Cmd) (*process, error) {
	pr := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(pr.done)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return pr, nil
}

// kill sends SIGKILL to the server's whole process group and waits for the server
// process to be reaped. The group is signalled before the reap, while its id cannot
// have been reused.
func (pr *process) kill() {
	_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
	<-pr.done
}

// stop asks for a fast shutdown (SIGINT) and kills the server if it has not exited
// within grace or when ctx ends.
func (pr *process) stop(ctx context.Context, grace time.Duration) {
	_ = pr.cmd.Process.Signal(syscall.SIGINT)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-pr.done:
	case <-ctx.Done():
		pr.kill()
	case <-timer.C:
		pr.kill()
	}
}

// startLocked starts the server and waits until it accepts connections, trying again
// when a retry may cure the failure: with a new port (newPort) when the chosen one was
// taken before the server bound it, or after a pause when a killed predecessor's
// processes have not let go of the port or shared memory yet. p.mu must be held.
func (p *Postgres) startLocked(ctx context.Context, newPort bool) error {
	ctx, cancel := context.WithTimeout(ctx, p.startTimeout)
	defer cancel()
	const attempts = 5
	var err error
	for i := 1; ; i++ {
		if newPort {
			if p.port, err = p.pickPort(); err != nil {
				return err
			}
		}
		var cause failure
		cause, err = p.launch(ctx)
		if err == nil || cause == fatal || i == attempts {
			return err
		}
		if cause == portTaken && newPort {
			continue
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(i) * 100 * time.Millisecond):
		}
	}
}

// failure classifies why a start failed, to decide on a retry.
type failure int

const (
	fatal     failure = iota
	portTaken         // another process listens on the port
	shmInUse          // processes of a killed server are still attached to its memory
)

// launch makes one attempt to start the server on p.port. On success it sets p.proc.
func (p *Postgres) launch(ctx context.Context) (failure, error) {
	logf, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fatal, fmt.Errorf("throwaway: %w", err)
	}
	fi, err := logf.Stat()
	if err != nil {
		logf.Close()
		return fatal, fmt.Errorf("throwaway: %w", err)
	}
	args := append([]string{"-D", p.dataDir(), "-p", strconv.Itoa(p.port)}, p.args...)
	cmd := exec.Command(filepath.Join(p.binDir, "postgres"), args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = p.dir, childEnv(), logf, logf
	cmd.SysProcAttr = sysProcAttr(p.cred, true)
	pr, err := spawn(cmd)
	logf.Close() // the server has its own copy
	if err != nil {
		return fatal, fmt.Errorf("throwaway: start postgres: %w", err)
	}
	if err := p.waitReady(ctx, pr); err != nil {
		pr.kill()
		log := p.logSince(fi.Size())
		return classify(log), fmt.Errorf("throwaway: postgres on port %d in %s: %w\nserver log (tail):\n%s",
			p.port, p.dir, err, tail(log, 30))
	}
	p.proc = pr
	return 0, nil
}

// classify reads the server log; the log is the only account a failed server gives.
func classify(log []byte) failure {
	switch {
	case bytes.Contains(log, []byte("could not create any TCP/IP sockets")),
		bytes.Contains(log, []byte("could not bind IPv4 address")):
		return portTaken
	case bytes.Contains(log, []byte("pre-existing shared memory block")):
		return shmInUse
	}
	return fatal
}

// waitReady polls until the server accepts connections, it exits, or ctx ends.
func (p *Postgres) waitReady(ctx context.Context, pr *process) error {
	// A poll must not outlive the server: after losing a port race, whatever took the
	// port may accept the connection and never answer.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // ends with waitReady at the latest
		select {
		case <-pr.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.answers(ctx) {
			return nil
		}
		select {
		case <-pr.done: // checked first: its ctx cancellation is not the caller's
			return fmt.Errorf("server exited: %v", pr.cmd.ProcessState)
		default:
		}
		select {
		case <-pr.done:
			return fmt.Errorf("server exited: %v", pr.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not accepting connections: %w", context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// answers reports whether our server accepts connections on p.port. After a port
// race another server may answer there, so it checks the data directory too.
func (p *Postgres) answers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn(p.port, "postgres"))
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	var dataDir string
	err = conn.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir)
	return err == nil && filepath.Clean(dataDir) == p.dataDir()
}

func (p *Postgres) logSince(offset int64) []byte {
	b, err := os.ReadFile(p.logPath())
	if err != nil {
		return []byte(err.Error())
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	return b[offset:]
}
