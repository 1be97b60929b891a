// Package version holds the version of kuryr-dpdk binaries, stamped at build
// time with -ldflags "-X github.com/kuryr-dpdk/kuryr-dpdk/internal/version.Version=...".
package version

// Version is the release of this build; "dev" for untagged builds.
var Version = "dev"
