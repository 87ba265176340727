// Package version holds Hookpost's version, set at build time with
// -ldflags "-X github.com/hookpost/hookpost/internal/version.Version=v1.2.3".
package version

// Version is the running build's version.
var Version = "dev"

// UserAgent is the User-Agent header every attempt carries.
func UserAgent() string { return "Hookpost/" + Version }
