package neutrontest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// ErrNoDatabase says the server's sqlite file is unknown (a server at
// $KURYR_NEUTRON_URL without $KURYR_NEUTRON_DB or $KURYR_NEUTRON_STATE).
var ErrNoDatabase = errors.New("neutron database unknown: set " + DBEnv + " or " + StateEnv)

// dbTimeout bounds one database edit, including waiting for neutron-server's
// own sqlite lock.
const dbTimeout = 30 * time.Second

var (
	idRE     = regexp.MustCompile(`^[0-9a-fA-F-]{1,36}$`)
	statusRE = regexp.MustCompile(`^[A-Z_]{1,16}$`)
)

// SetPortStatus sets a port's status (ACTIVE, DOWN, BUILD, ERROR) in the
// database, standing in for the L2 agent that would report the port up: there
// is none, so ports stay DOWN otherwise. Like Neutron's own status update, it
// bumps the port's revision_number and updated_at. It fails naming the port
// when there is no such port.
func (s *Server) SetPortStatus(portID, status string) error {
	return s.setStatus("ports", "port", portID, status)
}

// SetTrunkStatus sets a trunk's status (ACTIVE, DOWN, BUILD, DEGRADED,
// ERROR) the way the agent's trunk handler would, bumping its revision.
func (s *Server) SetTrunkStatus(trunkID, status string) error {
	return s.setStatus("trunks", "trunk", trunkID, status)
}

func (s *Server) setStatus(table, kind, id, status string) error {
	if s.DBPath == "" {
		return fmt.Errorf("set %s %s status %s: %w", kind, id, status, ErrNoDatabase)
	}
	// Both values go into SQL text: allow only what an ID and a status are.
	if !idRE.MatchString(id) {
		return fmt.Errorf("set %s status: malformed %s ID %q", kind, kind, id)
	}
	if !statusRE.MatchString(status) {
		return fmt.Errorf("set %s %s status: malformed status %q", kind, id, status)
	}
	sql := fmt.Sprintf(`BEGIN IMMEDIATE;
UPDATE %[1]s SET status = '%[3]s' WHERE id = '%[2]s';
SELECT changes();
UPDATE standardattributes SET revision_number = revision_number + 1,
  updated_at = strftime('%%Y-%%m-%%d %%H:%%M:%%S.000000', 'now')
  WHERE id = (SELECT standard_attr_id FROM %[1]s WHERE id = '%[2]s');
COMMIT;`, table, id, status)
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	// .timeout makes sqlite3 wait for neutron-server's write lock instead of
	// failing with "database is locked".
	out, err := exec.CommandContext(ctx, "sqlite3", "-bail", s.DBPath,
		fmt.Sprintf(".timeout %d", dbTimeout.Milliseconds()), sql).CombinedOutput()
	if err != nil {
		return fmt.Errorf("set %s %s status %s in %s: %w: %s", kind, id, status, s.DBPath, err,
			strings.TrimSpace(string(out)))
	}
	if strings.TrimSpace(string(out)) != "1" {
		return fmt.Errorf("set %s %s status %s: no such %s in %s", kind, id, status, kind, s.DBPath)
	}
	return nil
}
