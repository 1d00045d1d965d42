package sqlstore

import (
	"context"
	"database/sql"
)

// RunOutputRead streams the run's chunks from one query: verification
// hashes every run's output, and a page-at-a-time read would hold a page
// of output in memory and cost a round trip per page. The columns are
// named, so the statement reads the same whatever columns run_output
// gains.
func (q queries) RunOutputRead(ctx context.Context, runID string, fn func(seq int64, data []byte) error) error {
	rows, err := q.query(ctx, `SELECT seq, data FROM run_output WHERE run_id = ? ORDER BY seq`, runID)
	if err != nil {
		return err
	}
	defer rows.Close()
	var seq int64
	var data sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&seq, &data); err != nil {
			return err
		}
		if err := fn(seq, data); err != nil {
			return err
		}
	}
	return rows.Err()
}
