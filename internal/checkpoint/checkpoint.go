// Package checkpoint keeps one JSON record per attachment (container ID,
// interface name) in a directory, so that CNI DEL can undo what ADD did after
// a daemon restart, a crash between steps, or a lost netdev (a DPDK device's
// MAC vanishes from sysfs once it is unbound). Records are written before any
// side effect, atomically (temporary file, fsync, rename, fsync of the
// directory), and carry a schema version.
package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultDir is where the daemon keeps its records on a node (persistent, so
// that they survive a daemon restart; after a node reboot the records still
// let DEL clean up).
const DefaultDir = "/var/lib/kuryr-dpdk/checkpoints"

// ErrNotFound means there is no record for the key.
var ErrNotFound = errors.New("no checkpoint record")

const (
	suffix    = ".json"
	tmpPrefix = ".tmp-"
)

// QuarantineDir is the subdirectory of the record directory where records
// that cannot be used are set aside (see SetAside).
const QuarantineDir = "quarantine"

// SetAsideReport says that one record file was set aside: moved to the
// quarantine directory (To), or, for a record of a newer schema version,
// left in place (To ""), with the reason.
type SetAsideReport struct {
	File   string
	To     string
	Reason error
}

// Store is a directory of records. It is safe for concurrent use on
// different keys; callers serialise ADD and DEL of one key.
type Store struct {
	dir    string
	now    func() time.Time
	report func(SetAsideReport)

	mu    sync.Mutex
	newer map[string]bool // newer-schema files already reported
}

// Option changes a Store built by New.
type Option func(*Store)

// WithReport calls report (logs, metrics) for every record set aside.
func WithReport(report func(SetAsideReport)) Option {
	return func(s *Store) { s.report = report }
}

// New opens (creating it, mode 0700) the record directory.
func New(dir string, opts ...Option) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create checkpoint directory %s: %w", dir, err)
	}
	s := &Store{dir: dir, now: time.Now, report: func(SetAsideReport) {}, newer: map[string]bool{}}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Dir is the record directory.
func (s *Store) Dir() string { return s.dir }

// fileName maps a key to its file. Container IDs cannot contain "@", so the
// first "@" separates the two parts and no two keys share a file.
func (s *Store) fileName(k Key) string {
	return filepath.Join(s.dir, k.ContainerID+"@"+k.IfName+suffix)
}

// Put writes the record, replacing any record with the same key. It sets
// the schema version, and the creation time when unset.
func (s *Store) Put(r Record) error {
	r.Version = SchemaVersion
	if r.Created.IsZero() {
		r.Created = s.now().UTC().Truncate(time.Millisecond)
	}
	data, err := Marshal(r)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", r.Key(), err)
	}
	if err := s.writeAtomic(s.fileName(r.Key()), data); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", r.Key(), err)
	}
	return nil
}

func (s *Store) writeAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(s.dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}

// Get reads the record for the key; the error wraps ErrNotFound when there
// is none.
func (s *Store) Get(containerID, ifName string) (Record, error) {
	k := Key{ContainerID: containerID, IfName: ifName}
	if err := ValidateKey(k); err != nil {
		return Record{}, err
	}
	data, err := os.ReadFile(s.fileName(k))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, fmt.Errorf("%w for %s", ErrNotFound, k)
	}
	if err != nil {
		return Record{}, fmt.Errorf("read checkpoint %s: %w", k, err)
	}
	r, err := Parse(data)
	if err == nil && r.Key() != k {
		err = fmt.Errorf("%w: file holds %s", ErrCorrupt, r.Key())
	}
	if errors.Is(err, ErrCorrupt) {
		// Nothing can be undone from it: set it aside, and to its caller
		// the attachment has no record.
		if qerr := s.quarantine(filepath.Base(s.fileName(k)), err); qerr != nil {
			return Record{}, fmt.Errorf("checkpoint %s: %w (setting it aside: %w)", k, err, qerr)
		}
		return Record{}, fmt.Errorf("%w for %s (its record was corrupt and is set aside: %w)", ErrNotFound, k, err)
	}
	if err != nil {
		return Record{}, fmt.Errorf("checkpoint %s: %w", k, err)
	}
	return r, nil
}

// SetAside moves the record of r's key to the quarantine directory and
// reports it with reason: for a record whose device is no longer as it
// says (see binding), kept for an operator, out of every later List.
func (s *Store) SetAside(r Record, reason error) error {
	k := r.Key()
	if err := ValidateKey(k); err != nil {
		return err
	}
	return s.quarantine(filepath.Base(s.fileName(k)), reason)
}

// quarantine moves the record file name into QuarantineDir, under a name
// that does not replace an earlier one, and reports it. A file already
// gone is not an error.
func (s *Store) quarantine(name string, reason error) error {
	qdir := filepath.Join(s.dir, QuarantineDir)
	if err := os.MkdirAll(qdir, 0o700); err != nil {
		return err
	}
	to := filepath.Join(qdir, fmt.Sprintf("%s.%d", name, s.now().UnixNano()))
	if err := os.Rename(filepath.Join(s.dir, name), to); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	s.report(SetAsideReport{File: name, To: to, Reason: reason})
	return nil
}

// Delete removes the record; deleting a missing record is not an error.
func (s *Store) Delete(containerID, ifName string) error {
	k := Key{ContainerID: containerID, IfName: ifName}
	if err := ValidateKey(k); err != nil {
		return err
	}
	if err := os.Remove(s.fileName(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete checkpoint %s: %w", k, err)
	}
	return syncDir(s.dir)
}

// List returns every readable record, sorted by key. A record that cannot
// be parsed or does not match its file name (ErrCorrupt) is set aside in
// QuarantineDir and reported, once; one of a newer schema version is left
// in place (a newer daemon may read it again) and reported once. Neither
// is returned nor fails the listing, so no other attachment waits on it.
// The error says which files could not be read at all; the readable
// records are returned with it.
func (s *Store) List() ([]Record, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints in %s: %w", s.dir, err)
	}
	var out []Record
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, tmpPrefix) || !strings.HasSuffix(name, suffix) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted while we listed
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read checkpoint file %s: %w", name, err))
			continue
		}
		r, err := Parse(data)
		if err == nil && s.fileName(r.Key()) != filepath.Join(s.dir, name) {
			err = fmt.Errorf("%w: file name does not match %s", ErrCorrupt, r.Key())
		}
		switch {
		case errors.Is(err, ErrCorrupt):
			if qerr := s.quarantine(name, err); qerr != nil {
				errs = append(errs, fmt.Errorf("checkpoint file %s: %w (setting it aside: %w)", name, err, qerr))
			}
			continue
		case errors.Is(err, ErrNewerSchema):
			s.reportNewer(name, err)
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("checkpoint file %s: %w", name, err))
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ContainerID != out[j].ContainerID {
			return out[i].ContainerID < out[j].ContainerID
		}
		return out[i].IfName < out[j].IfName
	})
	return out, errors.Join(errs...)
}

func (s *Store) reportNewer(name string, err error) {
	s.mu.Lock()
	seen := s.newer[name]
	s.newer[name] = true
	s.mu.Unlock()
	if !seen {
		s.report(SetAsideReport{File: name, Reason: err})
	}
}

// Stale returns the records keep says are no longer wanted (for example
// those whose container the runtime no longer knows, from CNI GC's list of
// valid attachments). The caller undoes each and then Deletes it.
func (s *Store) Stale(keep func(Record) bool) ([]Record, error) {
	all, err := s.List()
	var out []Record
	for _, r := range all {
		if !keep(r) {
			out = append(out, r)
		}
	}
	return out, err
}

// RemoveTemp deletes temporary files older than age, left behind by a
// crash in the middle of a Put, and says how many it removed.
func (s *Store) RemoveTemp(age time.Duration) (int, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("list checkpoints in %s: %w", s.dir, err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || s.now().Sub(info.ModTime()) < age {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
