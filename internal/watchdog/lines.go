package watchdog

import (
	"bytes"
	"sync"
)

// maxLine is the longest log line kept whole; longer ones are split.
const maxLine = 16 << 10

// LineWriter turns a byte stream into log lines and keeps the last few of them
// for error messages. It is an io.Writer for exec.Cmd.
type LineWriter struct {
	emit func(string)
	mu   sync.Mutex
	buf  []byte
	tail []string // last lines, newest last
}

const tailLines = 5

// NewLineWriter returns a writer that calls emit once per line.
func NewLineWriter(emit func(string)) *LineWriter { return &LineWriter{emit: emit} }

func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLine {
				w.line(w.buf)
				w.buf = w.buf[:0]
			}
			break
		}
		if len(w.buf) > 0 {
			w.buf = append(w.buf, p[:i]...)
			w.line(w.buf)
			w.buf = w.buf[:0]
		} else {
			w.line(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

func (w *LineWriter) line(b []byte) {
	s := string(bytes.TrimSuffix(b, []byte("\r")))
	if len(w.tail) == tailLines {
		copy(w.tail, w.tail[1:])
		w.tail = w.tail[:tailLines-1]
	}
	w.tail = append(w.tail, s)
	if w.emit != nil {
		w.emit(s)
	}
}

// Flush emits a partial last line.
func (w *LineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(w.buf)
		w.buf = w.buf[:0]
	}
}

// Tail returns the last lines written, joined.
func (w *LineWriter) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b bytes.Buffer
	for i, l := range w.tail {
		if i > 0 {
			b.WriteString(" | ")
		}
		b.WriteString(l)
	}
	return b.String()
}
