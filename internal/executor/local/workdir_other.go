//go:build !linux

package local

// pristine reports false: working directories are kept only on Linux,
// where steps run in cgroups.
func pristine(dir string) bool { return false }
