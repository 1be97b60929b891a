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
// once it has wired them: every Period it runs one UPDATE through a
// long-lived `mariadb` client on the database's unix socket.
//
// The UPDATE can lose a deadlock against Neutron's own transactions (error
// 1213, seen while kuryr-kubernetes bulk-creates 50 pool ports); in batch
// mode the client then exits. A deadlock only means "try again", as it
// would for a real agent: Run starts a new client and goes on. Any other
// error ends Run.
type Agent struct {
	// Socket is the MariaDB unix socket; Database Neutron's schema.
	Socket, Database string
	// Period between two passes (0.2 s in the benchmark).
	Period time.Duration
	// Client is the command line of the SQL client, which reads statements
	// on stdin and answers on stdout; nil means mariadb on Socket. Tests
	// put a stand-in here.
	Client []string

	mu        sync.Mutex
	activated int
	passes    int
	deadlocks int
}

// Activated returns how many ports the agent set ACTIVE so far, in how
// many passes, and how many passes lost a deadlock and were retried.
func (a *Agent) Activated() (ports, passes, deadlocks int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.activated, a.passes, a.deadlocks
}

// errDeadlock is a pass that lost a deadlock (MariaDB error 1213).
var errDeadlock = errors.New("deadlock")

// deadlockMsg is how the client reports error 1213 on stderr, e.g.
// "ERROR 1213 (40001) at line 1: Deadlock found when trying to get lock; try restarting transaction".
const deadlockMsg = "ERROR 1213 "

// Run runs passes until ctx ends, with a new client after a deadlock. It
// returns an error if the client dies for any other reason.
func (a *Agent) Run(ctx context.Context) error {
	for {
		err := a.session(ctx)
		if !errors.Is(err, errDeadlock) {
			return err
		}
		a.mu.Lock()
		a.deadlocks++
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(a.Period):
		}
	}
}

// session runs passes through one client until ctx ends or the client
// stops; a client that stopped on a deadlock gives errDeadlock.
func (a *Agent) session(ctx context.Context) error {
	argv := a.Client
	if argv == nil {
		argv = []string{"mariadb", "--no-defaults", "--batch", "--unbuffered", "--skip-column-names", "-S", a.Socket, a.Database}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
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
		_, werr := io.WriteString(stdin, activateSubportsSQL)
		if werr != nil || !lines.Scan() {
			if ctx.Err() != nil {
				return nil
			}
			_ = cmd.Wait() // stderr is complete once the client has exited
			if strings.Contains(stderr.String(), deadlockMsg) {
				return errDeadlock
			}
			return fmt.Errorf("agent stand-in: mariadb client stopped answering: %w (%s)",
				errors.Join(werr, lines.Err(), io.ErrUnexpectedEOF), strings.TrimSpace(stderr.String()))
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
