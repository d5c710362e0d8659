// Package peel unmounts everything stacked on a path: the one unmount loop
// of podsmith's mounts and netns packages.
package peel

// maxUnmounts bounds the loop: more mounts than that stacked on one path
// is not something podsmith made.
const maxUnmounts = 16

// Unmount lazily unmounts every mount stacked on path (MNT_DETACH), never
// following a symlink at path. A path that is not a mount point, or does
// not exist, is success. It returns ErrStillMounted when path is still
// mounted after maxUnmounts unmounts.
func Unmount(path string) error { return unmount(path) }
