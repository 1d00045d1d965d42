// Package airlock holds the domain vocabulary shared by every Airlock
// package: the application error type with its kinds, and opaque IDs.
//
// It must not import any other Airlock package, nor net/http or
// database/sql: it is the bottom of the dependency graph.
package airlock
