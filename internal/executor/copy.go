package executor

import (
	"io"
	"sync"
)

// copyBuffers are the buffers Copy copies through.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Copy copies src to dst until EOF, as io.Copy does, through a pooled
// buffer: io.Copy allocates 32 KiB per call — per stream of every step of
// every node — and uses neither side's ReadFrom or WriteTo, so an
// executor's writer may itself implement ReadFrom with Copy.
func Copy(dst io.Writer, src io.Reader) (n int64, err error) {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	for {
		nr, rerr := src.Read(*buf)
		if nr > 0 {
			nw, werr := dst.Write((*buf)[:nr])
			n += int64(nw)
			switch {
			case werr != nil:
				return n, werr
			case nw != nr:
				return n, io.ErrShortWrite
			}
		}
		switch {
		case rerr == io.EOF:
			return n, nil
		case rerr != nil:
			return n, rerr
		}
	}
}
