// Package pgschema owns what Hookpost's two PostgreSQL tables, the outbox and the delivery ledger, share: names
// quoted from a schema and a table, SQL string literals, and applying idempotent DDL with replicas taking turns.
// It imports no Kubernetes package.
package pgschema

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultSchema is the schema a table is in when none is configured.
const DefaultSchema = "public"

// Table is a table's schema and name, unquoted.
type Table struct {
	Schema, Name string
}

// NewTable is the table name in schema, DefaultSchema when schema is empty and defaultName when name is.
func NewTable(schema, name, defaultName string) Table {
	if schema == "" {
		schema = DefaultSchema
	}
	if name == "" {
		name = defaultName
	}
	return Table{Schema: schema, Name: name}
}

// CreateSchema is the statement, ending in a blank line, that creates the table's schema when it is not
// DefaultSchema; "" when it is.
func (t Table) CreateSchema() string {
	if t.Schema == DefaultSchema {
		return ""
	}
	return fmt.Sprintf("CREATE SCHEMA IF NOT EXISTS %s;\n\n", pgx.Identifier{t.Schema}.Sanitize())
}

// Identifier is the table as a pgx identifier.
func (t Table) Identifier() pgx.Identifier { return pgx.Identifier{t.Schema, t.Name} }

// Qualified is the quoted schema.table.
func (t Table) Qualified() string { return t.Identifier().Sanitize() }

// QualifiedSibling is the quoted schema.<table><suffix>, for an index, trigger or function of the table.
func (t Table) QualifiedSibling(suffix string) string {
	return pgx.Identifier{t.Schema, t.Name + suffix}.Sanitize()
}

// Sibling is the quoted <table><suffix> without the schema, for names that take none (an index being created).
func (t Table) Sibling(suffix string) string { return pgx.Identifier{t.Name + suffix}.Sanitize() }

// QuoteLiteral quotes s as an SQL string literal (standard_conforming_strings, the default since 9.1).
func QuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Apply runs ddl, idempotent statements creating what, in one transaction holding the advisory lock lockKey, so
// replicas that start together apply it one after the other instead of failing on each other's half-made
// objects. Creating an index or trigger for the first time locks the table: with lock_timeout 10s it gives up
// rather than hold a busy table's writers back for long.
func Apply(ctx context.Context, pool *pgxpool.Pool, lockKey, what, ddl string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin %s migration: %w", what, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", lockKey); err != nil {
		return fmt.Errorf("lock %s migration: %w", what, err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
		return fmt.Errorf("set lock timeout for %s migration: %w", what, err)
	}
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("create %s: %w", what, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit %s migration: %w", what, err)
	}
	return nil
}
