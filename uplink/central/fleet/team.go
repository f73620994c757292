package fleet

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// DockTeam is the team of the config a dock runs: the version it reports active if central
// made it, else the one central wants it to run; "" when central made neither. The
// notifications route a dock's faults to its team by it.
func (d *DB) DockTeam(dock string) (string, error) {
	var body string
	err := d.sql.QueryRow(`SELECT coalesce(a.body, w.body) FROM dock_config k
		LEFT JOIN configs a ON a.version = k.active LEFT JOIN configs w ON w.version = k.desired
		WHERE k.dock = ? AND coalesce(a.body, w.body) IS NOT NULL`, dock).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("team of %s: %w", dock, err)
	}
	var c struct {
		Team string `json:"team"`
	}
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		return "", fmt.Errorf("team of %s: config: %w", dock, err)
	}
	return c.Team, nil
}
