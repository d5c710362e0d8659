package cni

// RestoreCache is restoreCache, for the external package's tests.
var RestoreCache = restoreCache
