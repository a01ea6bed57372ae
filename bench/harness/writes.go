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

// Missing counts the acknowledged writes the final primary does not have.
func Missing(ctx context.Context, dsn string, acks []chaos.Ack) (lost, acked int, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT id FROM "+chaos.WritesTable)
	if err != nil {
		return 0, 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, 0, err
	}
	present := map[int64]bool{}
	for _, id := range ids {
		present[id] = true
	}
	return len(chaos.Lost(acks, present)), len(acks), nil
}
