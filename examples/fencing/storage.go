package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// fencedWrite stores value for name unless storage has already accepted a
// larger token for name. It reports whether the write was accepted. The
// comparison and the write are one statement: no pause can split them.
func fencedWrite(ctx context.Context, db *pgx.Conn, table, name string, token uint64, value string) (bool, error) {
	if token > math.MaxInt64 {
		return false, fmt.Errorf("token %d does not fit a bigint", token)
	}
	t := ident(table)
	tag, err := db.Exec(ctx, `INSERT INTO `+t+` (name, token, value) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, value = EXCLUDED.value
		WHERE `+t+`.token <= EXCLUDED.token`,
		name, int64(token), value)
	if err != nil {
		return false, fmt.Errorf("fenced write to %s: %w", table, err)
	}
	return tag.RowsAffected() == 1, nil
}

// verdict is how a write's outcome is printed.
func verdict(accepted bool, yes string) string {
	if accepted {
		return yes
	}
	return "REFUSED (stale token)"
}

// connect opens one connection to PostgreSQL, and says clearly where it
// tried when it cannot.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL DSN: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	db, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL at %s:%d, database %q, user %q (set -dsn or DISTLOCK_PG_DSN): %w",
			cfg.Host, cfg.Port, cfg.Database, cfg.User, err)
	}
	return db, nil
}

// ident quotes a table name for SQL.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
