// Package testenv decides what integration tests do when a real component
// (PostgreSQL, sshd, Chromium) is absent: skip with the reason, or, under
// AIRLOCK_TEST_STRICT=1 (CI), fail, so that a suite cannot pass by running
// nothing. Test code only.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/airlockhq/airlock/internal/config"
)

// Strict reports whether absent components are failures.
func Strict() bool { return os.Getenv("AIRLOCK_TEST_STRICT") == "1" }

// Missing skips the test with reason, or fails it in strict mode.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if Strict() {
		t.Fatalf("AIRLOCK_TEST_STRICT=1 and %s", reason)
	}
	t.Skip(reason)
}

// PostgresURL returns AIRLOCK_TEST_POSTGRES_URL, or skips (fails when
// strict) when it is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("AIRLOCK_TEST_POSTGRES_URL")
	if u == "" {
		Missing(t, "AIRLOCK_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping PostgreSQL tests")
	}
	return u
}

// PostgresSchema creates a fresh schema on the test PostgreSQL, dropped
// at cleanup, and returns a database URL whose connections use it
// (search_path), so each test has a database of its own. It skips (fails
// when strict) like PostgresURL.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "airlock_test_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", base, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Drivers are the storage drivers every server-level suite runs on.
var Drivers = []string{"sqlite", "postgres"}

// UseDriver returns a configuration change for DemoServer that puts the
// server on the named driver: SQLite in its data directory (the
// default), or a fresh PostgreSQL schema.
func UseDriver(t testing.TB, driver string) func(*config.Config) {
	t.Helper()
	if driver != "postgres" {
		return func(*config.Config) {}
	}
	u := PostgresSchema(t)
	return func(c *config.Config) { c.Database.Driver, c.Database.URL = "postgres", u }
}
