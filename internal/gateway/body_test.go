package gateway

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestReadWhole: a body read whole in pieces of any size, up to its length;
// one that ends early is an unexpected EOF.
func TestReadWhole(t *testing.T) {
	for _, n := range []int{0, 1, 6, 4095, 4096, 4097, 10000, 65536} {
		src := bytes.Repeat([]byte("ab"), n)[:n]
		got, err := readWhole(iotest.OneByteReader(bytes.NewReader(src)), int64(n))
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("n=%d: %v", n, err)
		}
		got, err = readWhole(iotest.DataErrReader(bytes.NewReader(src)), int64(n))
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("dataerr n=%d: %v", n, err)
		}
		if n > 0 {
			if _, err := readWhole(bytes.NewReader(src[:n-1]), int64(n)); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("short n=%d: %v", n, err)
			}
		}
	}
}
