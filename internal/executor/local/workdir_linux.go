package local

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// pristine reports whether dir is as WorkDirs.make made it: a directory
// (not a link to one), mode 0700, owned by this process's user and
// group (a step may change the group to another of the user's), on its
// parent's file system (not a mount point), no larger than one block (on
// ext4 a directory that grew keeps its emptied blocks, which every later
// listing reads), without extended attributes but its parent's SELinux
// label, and empty.
func pristine(dir string) bool {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st, parent unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode != unix.S_IFDIR|0o700 || int(st.Uid) != unix.Geteuid() || int(st.Gid) != unix.Getegid() ||
		st.Size > int64(st.Blksize) || unix.Fstatat(fd, "..", &parent, 0) != nil || st.Dev != parent.Dev {
		return false
	}
	if n, err := unix.Flistxattr(fd, nil); err != nil || n != 0 && !parentsLabelOnly(fd) {
		return false
	}
	var buf [512]byte
	for {
		n, err := unix.Getdents(fd, buf[:])
		switch {
		case err != nil:
			return false
		case n == 0:
			return true
		}
		if _, count, _ := unix.ParseDirent(buf[:n], 1, nil); count > 0 {
			return false
		}
	}
}

// selinuxLabel is the extended attribute every file has on an SELinux
// host: without it, no directory would be kept there.
const selinuxLabel = "security.selinux"

// parentsLabelOnly reports whether the only extended attribute of the
// directory open as fd is its SELinux label, the same as its parent's,
// as a new directory has by default. One a step relabelled is removed,
// as is one whose new directories get another label by policy.
func parentsLabelOnly(fd int) bool {
	var names [64]byte
	if n, err := unix.Flistxattr(fd, names[:]); err != nil || string(names[:n]) != selinuxLabel+"\x00" {
		return false
	}
	pfd, err := unix.Openat(fd, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(pfd)
	var own, parent [256]byte
	n, err := unix.Fgetxattr(fd, selinuxLabel, own[:])
	if err != nil {
		return false
	}
	m, err := unix.Fgetxattr(pfd, selinuxLabel, parent[:])
	return err == nil && bytes.Equal(own[:n], parent[:m])
}
