//go:build !linux

// Command crishim serves the CRI for pod sandboxes: Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "crishim: Linux only")
	os.Exit(1)
}
