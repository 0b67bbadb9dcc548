// Package proc runs commands in process groups of their own, their output in
// a log file, so that stopping one stops everything it started.
package proc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a command running in its own process group, its output going to
// a log file.
type Process struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // set when done is closed
}

// Start starts binary with args, writing its output to logPath. name names the
// process in errors.
func Start(name, logPath, binary string, args ...string) (*Process, error) {
	return StartWithEnv(name, logPath, nil, binary, args...)
}

// StartWithEnv is Start with env added to the environment the process inherits.
func StartWithEnv(name, logPath string, env []string, binary string, args ...string) (*Process, error) {
	// Appended to: a process started again keeps the log of the one before.
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to create the log of %s: %w", name, err)
	}
	cmd := exec.Command(binary, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A process group of its own, so that stopping it stops its children
		// and a Ctrl-C in the terminal reaches only the parent.
		Setpgid: true,
		// Killed if the process that started it dies without cleaning up.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited returns an error if the process has already exited.
func (p *Process) Exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %w (see %s)", p.name, p.err, p.log.Name())
	default:
		return nil
	}
}

// Err returns how the process exited once it has: nil for a zero exit
// status, an *exec.ExitError otherwise.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM to the process group, then SIGKILL if it is still
// running after grace, and waits for the process to exit.
func (p *Process) Stop(grace time.Duration) error {
	defer p.log.Close()
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("failed to stop %s: %w", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Whatever the process group started is gone too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// Kill kills the process group at once, as a crash or an OOM kill would,
// and waits for the process to exit.
func (p *Process) Kill() {
	defer p.log.Close()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// FreeLoopbackPorts returns n distinct TCP ports that are free on 127.0.0.1.
func FreeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("failed to find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
