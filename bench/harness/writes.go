package harness

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/chaos"
)

// CreateWritesTable creates the table the benchmarks' writer inserts
// into (chaos.WritesTable).
func CreateWritesTable(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+chaos.WritesTable+" (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
	return err
}

// GapIn is the longest time without an acknowledged write in [from, to].
func GapIn(acks []chaos.Ack, from, to time.Time) time.Duration {
	prev, gap := from, time.Duration(0)
	for _, a := range acks {
		if a.At.Before(from) {
			continue
		}
		if a.At.After(to) {
			break
		}
		gap = max(gap, a.At.Sub(prev))
		prev = a.At
	}
	return max(gap, to.Sub(prev))
}

// Missing returns the acknowledged writes of acks whose ids the table of
// the database at dsn does not hold.
func Missing(ctx context.Context, dsn, table string, acks []chaos.Ack) ([]chaos.Ack, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	ids := make([]int64, len(acks))
	for i, a := range acks {
		ids[i] = a.ID
	}
	rows, err := conn.Query(ctx, "SELECT id FROM "+pgx.Identifier{table}.Sanitize()+" WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, err
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	present := make(map[int64]bool, len(found))
	for _, id := range found {
		present[id] = true
	}
	return chaos.Lost(acks, present), nil
}
