// Package linkwait waits for network interfaces to go, listening to the
// kernel's link events: the one such wait of netns/cni and the tests.
package linkwait
