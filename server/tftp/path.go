package tftp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Confinement errors. Both are answered with TFTP ERROR 2 (access
// violation).
var (
	errBadPath     = errors.New("path not allowed")
	errOutsideRoot = errors.New("path resolves outside the root")
	errNotRegular  = errors.New("not a regular file")
)

// cleanPath turns a requested file name into a path relative to the root, or
// fails with errBadPath. Rules:
//   - control characters (below 0x20, and 0x7f) are refused;
//   - one leading "/" is dropped, so "/start4.elf" and "start4.elf" name the
//     same file, as with tftpd-hpa -s; anything still absolute ("//x") is
//     refused;
//   - a ".." component anywhere is refused, even one that would stay inside
//     the root ("a/../b"); "." and empty components are cleaned away;
//   - a backslash is an ordinary byte (no DOS path translation).
func cleanPath(name string) (string, error) {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%w: %q: control character", errBadPath, name)
		}
	}
	rel := strings.TrimPrefix(name, "/")
	if rel == "" || strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("%w: %q: absolute or empty", errBadPath, name)
	}
	for _, c := range strings.Split(rel, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: %q: \"..\" component", errBadPath, name)
		}
	}
	rel = filepath.Clean(rel)
	if rel == "." || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w: %q", errBadPath, name)
	}
	return rel, nil
}

// openBeneath opens root/rel read-only so that no path component, symlinks
// included, leaves root. With openat2 (Linux >= 5.6) the kernel enforces it
// (RESOLVE_BENEATH: relative symlinks that stay inside are followed;
// absolute symlinks and ones that climb out fail). Without openat2
// (ENOSYS, or seccomp returning EPERM) it falls back to EvalSymlinks and a
// prefix check, which follows absolute symlinks that point back inside root
// and is subject to a rename race; the built tree is not writable by
// clients, so the race is theoretical.
//
// A FIFO or device never blocks the open (O_NONBLOCK); anything but a
// regular file is refused with errNotRegular.
func openBeneath(root, rel string, useOpenat2 bool) (*os.File, error) {
	var f *os.File
	if useOpenat2 {
		var err error
		f, err = openat2Beneath(root, rel)
		if err == nil || !(errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM)) {
			if err != nil {
				return nil, err
			}
			return checkRegular(f)
		}
	}
	f, err := openEvalSymlinks(root, rel)
	if err != nil {
		return nil, err
	}
	return checkRegular(f)
}

func checkRegular(f *os.File) (*os.File, error) {
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), errNotRegular)
	}
	return f, nil
}

func openat2Beneath(root, rel string) (*os.File, error) {
	dirfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dirfd)
	for {
		fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		})
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			continue // EAGAIN: a concurrent rename; the kernel asks to retry
		case err == unix.EXDEV:
			return nil, &fs.PathError{Op: "openat2", Path: filepath.Join(root, rel), Err: errOutsideRoot}
		case err != nil:
			return nil, &fs.PathError{Op: "openat2", Path: filepath.Join(root, rel), Err: err}
		}
		return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
	}
}

func openEvalSymlinks(root, rel string) (*os.File, error) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, err
	}
	full, err := filepath.EvalSymlinks(filepath.Join(realRoot, rel))
	if err != nil {
		return nil, err
	}
	if r, err := filepath.Rel(realRoot, full); err != nil || !filepath.IsLocal(r) {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(root, rel), Err: errOutsideRoot}
	}
	return os.OpenFile(full, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
}
