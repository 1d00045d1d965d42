//go:build linux

package contain

// Test hooks for the external tests, which can use testenv (an internal
// test cannot: testenv imports the server, which imports this package).

type Record = record

var (
	WriteRecord  = writeRecord
	Self         = self
	RecordSuffix = recordSuffix
)

// StartTime is pid's start time, and whether it is a zombie.
func StartTime(pid int) (start uint64, zombie bool, err error) {
	st, err := readStat(pid)
	return st.start, st.state == 'Z', err
}

// CgroupOf is the step's cgroup ("" in the fallback).
func CgroupOf(g *Group) string { return g.cgroup }
