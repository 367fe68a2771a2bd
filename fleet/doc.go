// Package fleet shows, by tests that run it, how a directory of vmleak
// summaries is queried with an existing analytical engine (DuckDB): the
// SQL in ../queries over Parquet summaries of the lab's real dumps, each
// answer checked against the dumps' census.
//
// It is its own Go module so that the DuckDB driver (cgo, a prebuilt
// static library) never reaches the vmleak binary, which stays pure Go.
// `make test` runs it (cd fleet && go test ./...).
package fleet
