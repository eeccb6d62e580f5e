package process

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// drainPipe carries a process's output to w through a pipe nimbus reads
// itself, so that Drain can take, at a given moment, everything the process
// wrote before it: a lambda invocation's log tail holds the lines its
// handler wrote before answering (the answer comes over another
// connection, so the output may still sit in the pipe).
type drainPipe struct {
	r    *os.File
	rc   syscall.RawConn
	w    io.Writer
	mu   sync.Mutex // held by whoever reads: the reader or Drain
	buf  []byte
	done chan struct{}
}

// newDrainPipe returns the pipe and its write end, which the process is
// given (and its starter closes after the start).
func newDrainPipe(w io.Writer) (*drainPipe, *os.File, error) {
	r, wr, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	rc, err := r.SyscallConn()
	if err != nil {
		r.Close()
		wr.Close()
		return nil, nil, err
	}
	return &drainPipe{r: r, rc: rc, w: w, buf: make([]byte, 32<<10), done: make(chan struct{})}, wr, nil
}

// readNow reads what the pipe holds without waiting, at most limit bytes
// (< 0: no limit); eof is true at the end of the output. The caller holds
// p.mu.
func (p *drainPipe) readNow(fd uintptr, limit int) (eof bool, again bool) {
	for limit != 0 {
		buf := p.buf
		if limit > 0 && limit < len(buf) {
			buf = buf[:limit]
		}
		n, err := syscall.Read(int(fd), buf)
		if n > 0 {
			p.w.Write(buf[:n])
			if limit > 0 {
				limit -= n
			}
			continue
		}
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return false, true
		default: // 0 bytes: every write end is closed; or a read error
			return true, false
		}
	}
	return false, false
}

// run copies the output until its end.
func (p *drainPipe) run() {
	defer close(p.done)
	defer p.r.Close()
	for eof := false; !eof; {
		err := p.rc.Read(func(fd uintptr) bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			var again bool
			eof, again = p.readNow(fd, -1)
			return !again // false: wait until the pipe is readable
		})
		if err != nil {
			return
		}
	}
}

// Drain takes what the pipe holds now, and no more: a process that
// writes without pause cannot keep it reading.
func (p *drainPipe) Drain() {
	p.rc.Control(func(fd uintptr) {
		p.mu.Lock()
		defer p.mu.Unlock()
		var n int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); e != 0 || n <= 0 {
			return
		}
		p.readNow(fd, int(n))
	})
}

// wait waits until the output has ended, or for at most d (a child that
// left the process group may hold the pipe).
func (p *drainPipe) wait(d time.Duration) {
	select {
	case <-p.done:
	case <-time.After(d):
	}
}
