// Package testkit holds the helpers that netcore's tests share across
// directories: the package's own tests in netcore/ and the end-to-end,
// benchmark and demo tests at the module root. It imports "testing" and is
// used only by tests; being internal keeps it out of the public API.
// Helpers that only one of those places uses stay there, in its
// _test.go files.
package testkit
