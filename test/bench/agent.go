package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// activateSubportsSQL is what an L2 agent's work amounts to for this
// benchmark: every port that is a trunk subport and not ACTIVE becomes
// ACTIVE, with its revision bumped (as Neutron does on every change), in
// one statement. ROW_COUNT() tells how many changed.
const activateSubportsSQL = `UPDATE ports p
  JOIN subports sp ON sp.port_id = p.id
  JOIN standardattributes sa ON sa.id = p.standard_attr_id
  SET p.status = 'ACTIVE', sa.revision_number = sa.revision_number + 1, sa.updated_at = UTC_TIMESTAMP()
  WHERE p.status <> 'ACTIVE';
SELECT ROW_COUNT();
`

// Agent stands in for the L2 agent that would set trunk subports ACTIVE
// once it has wired them: every Period it runs one UPDATE through a single
// long-lived `mariadb` client on the database's unix socket.
type Agent struct {
	// Socket is the MariaDB unix socket; Database Neutron's schema.
	Socket, Database string
	// Period between two passes (0.2 s in the benchmark).
	Period time.Duration

	mu        sync.Mutex
	activated int
	passes    int
}

// Activated returns how many ports the agent set ACTIVE so far, and in how
// many passes.
func (a *Agent) Activated() (ports, passes int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.activated, a.passes
}

// Run runs passes until ctx ends. It returns an error if the client dies.
func (a *Agent) Run(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--batch", "--unbuffered", "--skip-column-names",
		"-S", a.Socket, a.Database)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("agent stand-in: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("agent stand-in: %w", err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("agent stand-in: start mariadb client on %s: %w", a.Socket, err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	lines := bufio.NewScanner(stdout)
	t := time.NewTicker(a.Period)
	defer t.Stop()
	for {
		if _, err := io.WriteString(stdin, activateSubportsSQL); err != nil {
			return fmt.Errorf("agent stand-in: write to mariadb client: %w (%s)", err, stderr.String())
		}
		if !lines.Scan() {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("agent stand-in: mariadb client stopped answering: %w (%s)",
				errors.Join(lines.Err(), io.ErrUnexpectedEOF), strings.TrimSpace(stderr.String()))
		}
		n, err := strconv.Atoi(strings.TrimSpace(lines.Text()))
		if err != nil {
			return fmt.Errorf("agent stand-in: ROW_COUNT answered %q", lines.Text())
		}
		a.mu.Lock()
		a.activated += n
		a.passes++
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
