//go:build !linux

package sandbox

import "errors"

// runHelper is Linux-only: elsewhere the helper refuses to start plugins.
func runHelper(string) error { return errors.New("the plugin sandbox needs Linux") }
