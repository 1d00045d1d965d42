package sshexec

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// failAfter accepts n bytes, then fails.
type failAfter struct {
	n   int
	got bytes.Buffer
}

var errFull = errors.New("full")

func (f *failAfter) Write(b []byte) (int, error) {
	if f.got.Len()+len(b) > f.n {
		k := f.n - f.got.Len()
		f.got.Write(b[:k])
		return k, errFull
	}
	return f.got.Write(b)
}

// A session's output is copied whole, in order, through a pooled buffer
// (no 32 KiB allocation per stream), and a failing writer stops the copy
// with its error, as io.Copy would.
func TestPooledCopy(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000) // several buffers' worth
	var out bytes.Buffer
	n, err := io.Copy(pooledCopy{&out}, struct{ io.Reader }{bytes.NewReader(data)})
	if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("copied %d bytes (%v), equal: %v; want %d", n, err, bytes.Equal(out.Bytes(), data), len(data))
	}
	f := &failAfter{n: 40000}
	n, err = io.Copy(pooledCopy{f}, struct{ io.Reader }{bytes.NewReader(data)})
	if !errors.Is(err, errFull) || n != 40000 || !bytes.Equal(f.got.Bytes(), data[:40000]) {
		t.Fatalf("a failing writer: copied %d (%v); want 40000 and its error", n, err)
	}
	r := bytes.NewReader(data)
	var src io.Reader = struct{ io.Reader }{r}
	p := pooledCopy{io.Discard}
	allocs := testing.AllocsPerRun(50, func() {
		r.Reset(data)
		if _, err := p.ReadFrom(src); err != nil {
			t.Fatal(err)
		}
	})
	if allocs >= 1 {
		t.Errorf("%.2f allocations per copy; want the buffer from the pool", allocs)
	}
}
