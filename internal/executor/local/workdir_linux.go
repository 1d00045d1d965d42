package local

import (
	"bytes"
	"errors"

	"golang.org/x/sys/unix"
)

// pristine reports whether dir is as WorkDirs.make made it: a directory
// (not a link to one), mode 0700, owned by this process's user and
// group (a step may change the group to another of the user's), on its
// parent's file system (not a mount point), no larger than one block (on
// ext4 a directory that grew keeps its emptied blocks, which every later
// listing reads), with its parent's inode flags, without extended
// attributes but its parent's SELinux label, and empty.
func pristine(dir string) bool {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	pfd, err := unix.Openat(fd, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(pfd)
	var st, parent unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode != unix.S_IFDIR|0o700 || int(st.Uid) != unix.Geteuid() || int(st.Gid) != unix.Getegid() ||
		st.Size > int64(st.Blksize) || unix.Fstat(pfd, &parent) != nil || st.Dev != parent.Dev || !parentsFlags(fd, pfd) {
		return false
	}
	if n, err := unix.Flistxattr(fd, nil); err != nil || n != 0 && !parentsLabelOnly(fd, pfd) {
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

// likeParent are the inode flags (chattr) a new directory takes from
// its parent, and passes on to its files (no copy-on-write, compression,
// encryption, case folding, project inheritance, synchronous writes, no
// dump, no atime, …), with immutable and append-only: its owner may set
// or clear most of them.
const likeParent = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80 | 0x400 | 0x800 | 0x4000 | 0x8000 | 0x10000 |
	0x800000 | 0x2000000 | 0x20000000 | 0x40000000

// parentsFlags reports whether the directory open as fd has the flags in
// likeParent that its parent, open as pfd, has: none where the file
// system has no flags.
func parentsFlags(fd, pfd int) bool {
	f, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP)
	}
	p, err := unix.IoctlGetUint32(pfd, unix.FS_IOC_GETFLAGS)
	return err == nil && (f^p)&likeParent == 0
}

// selinuxLabel is the extended attribute every file has on an SELinux
// host: without it, no directory would be kept there.
const selinuxLabel = "security.selinux"

// parentsLabelOnly reports whether the only extended attribute of the
// directory open as fd is its SELinux label, the same as its parent's
// (open as pfd), as a new directory has by default. One a step
// relabelled is removed, as is one whose new directories get another
// label by policy.
func parentsLabelOnly(fd, pfd int) bool {
	var names [64]byte
	if n, err := unix.Flistxattr(fd, names[:]); err != nil || string(names[:n]) != selinuxLabel+"\x00" {
		return false
	}
	var own, parent [256]byte
	n, err := unix.Fgetxattr(fd, selinuxLabel, own[:])
	if err != nil {
		return false
	}
	m, err := unix.Fgetxattr(pfd, selinuxLabel, parent[:])
	return err == nil && bytes.Equal(own[:n], parent[:m])
}
