package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/pipelines/worker"
)

// KV is the compacted control topic the store keeps its records in
// (broker.Store).
type KV interface {
	Save(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context) (map[string][]byte, error)
}

// Head is the current state of one source or pipeline: its spec version
// and the state an operator wants it in.
type Head struct {
	Kind      spec.Kind    `json:"kind"`
	Name      string       `json:"name"`
	Version   int          `json:"version"`
	Desired   worker.State `json:"desired_state"`
	Deleted   bool         `json:"deleted,omitempty"`
	UpdatedAt time.Time    `json:"updated_at"`
	// Resnapshot is a source's latest resnapshot request. It is kept
	// here, beside the desired state, so a server that dies before the
	// source completes it runs it again after a restart.
	Resnapshot *worker.Resnapshot `json:"resnapshot,omitempty"`
}

// Version is one accepted spec of a source or pipeline, as it was sent:
// secret references stay references.
type Version struct {
	Version   int       `json:"version"`
	Format    string    `json:"format"` // "yaml" or "json"
	Spec      string    `json:"spec"`
	CreatedAt time.Time `json:"created_at"`
}

type key struct {
	kind spec.Kind
	name string
}

// Store keeps specs, their versions and desired states in the
// control topic _sluice.<instance>.configs, so that a restarted server (or
// another one) sees the same world. Keys are "<kind>/<name>" for heads and
// "<kind>/<name>/v/<n>" for versions. A deleted resource keeps a head
// marked deleted, not a tombstone: compaction may remove tombstones, and
// version numbers must never be reused.
type Store struct {
	kv KV

	// writeMu serializes writes with Reload, so that a reload never
	// drops a write made while it read the topic (and a version number is
	// never given twice).
	writeMu  sync.Mutex
	mu       sync.Mutex
	heads    map[key]Head
	versions map[key]map[int]Version
}

// OpenStore loads the store's records from kv.
func OpenStore(ctx context.Context, kv KV) (*Store, error) {
	s := &Store{kv: kv}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads every record again (to see another server's changes).
func (s *Store) Reload(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.reloadLocked(ctx)
}

// reloadLocked is Reload with s.writeMu held.
func (s *Store) reloadLocked(ctx context.Context) error {
	all, err := s.kv.Load(ctx)
	if err != nil {
		return fmt.Errorf("load control state: %w", err)
	}
	heads := map[key]Head{}
	versions := map[key]map[int]Version{}
	for k, v := range all {
		parts := strings.Split(k, "/")
		switch {
		case len(parts) == 2:
			var h Head
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("control record %q: %w", k, err)
			}
			heads[key{h.Kind, h.Name}] = h
		case len(parts) == 4 && parts[2] == "v":
			var ver Version
			if err := json.Unmarshal(v, &ver); err != nil {
				return fmt.Errorf("control record %q: %w", k, err)
			}
			kk := key{spec.Kind(parts[0]), parts[1]}
			if versions[kk] == nil {
				versions[kk] = map[int]Version{}
			}
			versions[kk][ver.Version] = ver
		}
	}
	s.mu.Lock()
	s.heads, s.versions = heads, versions
	s.mu.Unlock()
	return nil
}

func headKey(k key) string { return string(k.kind) + "/" + k.name }
func versionKey(k key, v int) string {
	return string(k.kind) + "/" + k.name + "/v/" + strconv.Itoa(v)
}

// ErrNotFound is returned for a source or pipeline that does not exist.
var ErrNotFound = errors.New("not found")

// Put stores text as the next version of kind/name, unless it equals the
// current version. A new resource's desired state is running; an existing
// one keeps its own. created tells whether the resource is new.
func (s *Store) Put(ctx context.Context, kind spec.Kind, name, format, text string) (h Head, created bool, err error) {
	k := key{kind, name}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.heads[k]
	exists := had && !old.Deleted
	if exists && s.versions[k][old.Version].Spec == text {
		return old, false, nil
	}
	next := 1
	for v := range s.versions[k] {
		next = max(next, v+1)
	}
	now := time.Now().UTC()
	ver := Version{Version: next, Format: format, Spec: text, CreatedAt: now}
	h = Head{Kind: kind, Name: name, Version: next, Desired: worker.StateRunning, UpdatedAt: now}
	if exists {
		h.Desired = old.Desired
	}
	if had {
		// Resnapshot IDs must never go back, not even for a source
		// deleted and created again: its stored position (which records
		// the requests done) and slot stay too.
		h.Resnapshot = old.Resnapshot
	}
	if err := s.save(ctx, versionKey(k, next), ver); err != nil {
		return Head{}, false, err
	}
	if err := s.save(ctx, headKey(k), h); err != nil {
		return Head{}, false, err
	}
	if s.versions[k] == nil {
		s.versions[k] = map[int]Version{}
	}
	s.versions[k][next] = ver
	s.heads[k] = h
	return h, !exists, nil
}

// Restore makes version v of kind/name current again, as a new version.
func (s *Store) Restore(ctx context.Context, kind spec.Kind, name string, v int) (Head, error) {
	s.mu.Lock()
	ver, ok := s.versions[key{kind, name}][v]
	h, exists := s.heads[key{kind, name}]
	s.mu.Unlock()
	if !exists || h.Deleted {
		return Head{}, ErrNotFound
	}
	if !ok {
		return Head{}, fmt.Errorf("version %d: %w", v, ErrNotFound)
	}
	h, _, err := s.Put(ctx, kind, name, ver.Format, ver.Spec)
	return h, err
}

// SetDesired records the state an operator wants kind/name in.
func (s *Store) SetDesired(ctx context.Context, kind spec.Kind, name string, st worker.State) (Head, error) {
	return s.update(ctx, kind, name, func(h *Head) bool { h.Desired = st; return true })
}

// RequestResnapshot records a new resnapshot request of source name: the
// next ID, for tables and, when the previous request is pending (neither
// done nor cancelled), its tables too, since the new request replaces it.
// A request for tables the pending one already covers (the same ones, or
// some of them: a retry of a request that replaced an earlier one) is that
// request (repeated true): nothing is stored, so a client that retries
// after a lost answer does not restart a long read.
//
// runtimeDone is the request the runtime reports done (nil: none), which
// may not be recorded yet; the caller asks the runtime before, so that the
// store's locks are not held while it does.
func (s *Store) RequestResnapshot(ctx context.Context, name string, tables []string,
	runtimeDone *worker.Resnapshot) (req worker.Resnapshot, repeated bool, err error) {
	_, err = s.update(ctx, spec.KindSource, name, func(h *Head) bool {
		req = worker.Resnapshot{ID: 1, Nonce: newNonce(), RequestedAt: time.Now().UTC()}
		if prev := h.Resnapshot; prev != nil {
			req.ID = prev.ID + 1
			if prev.CompletedAt == nil && prev.CancelledAt == nil && !prev.Same(runtimeDone) {
				if covers(prev.Tables, tables) {
					req, repeated = *prev, true
					return false
				}
				req.Tables = append(req.Tables, prev.Tables...)
			}
		}
		for _, t := range tables {
			if !slices.Contains(req.Tables, t) {
				req.Tables = append(req.Tables, t)
			}
		}
		r := req
		h.Resnapshot = &r
		return true
	})
	return req, repeated, err
}

// newNonce returns a random nonce for a resnapshot request: with its ID it
// identifies the request in the source's stored position, which keeps
// IDs of requests from before a rebuilt configs topic.
func newNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// covers reports whether every table of asked is in have.
func covers(have, asked []string) bool {
	for _, t := range asked {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// Errors of CancelResnapshot.
var (
	errNoResnapshot   = errors.New("no resnapshot request")
	errResnapshotDone = errors.New("resnapshot request is done")
)

// CancelResnapshot cancels the latest resnapshot request of source name
// unless it is done (recorded, or the request runtimeDone, which the
// runtime reports done; see RequestResnapshot). A request cancelled
// already is returned as it is.
func (s *Store) CancelResnapshot(ctx context.Context, name string,
	runtimeDone *worker.Resnapshot) (worker.Resnapshot, error) {
	var req worker.Resnapshot
	var refused error
	_, err := s.update(ctx, spec.KindSource, name, func(h *Head) bool {
		prev := h.Resnapshot
		switch {
		case prev == nil:
			refused = errNoResnapshot
			return false
		case prev.CompletedAt != nil || prev.Same(runtimeDone):
			req, refused = *prev, errResnapshotDone
			return false
		case prev.CancelledAt != nil:
			req = *prev
			return false
		}
		req = *prev
		now := time.Now().UTC()
		req.CancelledAt = &now
		r := req
		h.Resnapshot = &r
		return true
	})
	if err == nil {
		err = refused
	}
	return req, err
}

// CompleteResnapshot records that resnapshot request req of source name
// is complete; another request, a recorded completion or a cancellation
// (accepted while the source was finishing: the cancel wins, the rows read
// are on Kafka either way) stays as it is.
//
// Unlike the API's changes, which an operator makes against the state
// they see, this runs in the background from a cache that may be older
// than another server's latest change, and a head is written whole: it
// reads the control topic again first, under the write lock, so a newer
// request or desired state stored by another server is kept.
func (s *Store) CompleteResnapshot(ctx context.Context, name string, req *worker.Resnapshot, at time.Time) error {
	s.mu.Lock()
	h, ok := s.heads[key{spec.KindSource, name}]
	s.mu.Unlock()
	if !ok || !h.Resnapshot.Same(req) || h.Resnapshot.CompletedAt != nil || h.Resnapshot.CancelledAt != nil {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.reloadLocked(ctx); err != nil {
		return err
	}
	_, err := s.updateLocked(ctx, spec.KindSource, name, func(h *Head) bool {
		if !h.Resnapshot.Same(req) || h.Resnapshot.CompletedAt != nil || h.Resnapshot.CancelledAt != nil {
			return false
		}
		r := *h.Resnapshot
		r.CompletedAt = &at
		h.Resnapshot = &r
		return true
	})
	return err
}

// Delete marks kind/name deleted.
func (s *Store) Delete(ctx context.Context, kind spec.Kind, name string) error {
	_, err := s.update(ctx, kind, name, func(h *Head) bool { h.Deleted, h.Desired = true, worker.StateStopped; return true })
	return err
}

// update changes the head of kind/name with f and stores it, unless f
// returns false (nothing to change).
func (s *Store) update(ctx context.Context, kind spec.Kind, name string, f func(*Head) bool) (Head, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.updateLocked(ctx, kind, name, f)
}

// updateLocked is update with s.writeMu held.
func (s *Store) updateLocked(ctx context.Context, kind spec.Kind, name string, f func(*Head) bool) (Head, error) {
	k := key{kind, name}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.heads[k]
	if !ok || h.Deleted {
		return Head{}, ErrNotFound
	}
	if !f(&h) {
		return s.heads[k], nil
	}
	h.UpdatedAt = time.Now().UTC()
	if err := s.save(ctx, headKey(k), h); err != nil {
		return Head{}, err
	}
	s.heads[k] = h
	return h, nil
}

func (s *Store) save(ctx context.Context, k string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.kv.Save(ctx, k, b); err != nil {
		return fmt.Errorf("save control state: %w", err)
	}
	return nil
}

// Get returns the head and current version of kind/name.
func (s *Store) Get(kind spec.Kind, name string) (Head, Version, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.heads[key{kind, name}]
	if !ok || h.Deleted {
		return Head{}, Version{}, false
	}
	return h, s.versions[key{kind, name}][h.Version], true
}

// List returns the heads of kind, by name.
func (s *Store) List(kind spec.Kind) []Head {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Head
	for k, h := range s.heads {
		if k.kind == kind && !h.Deleted {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Versions returns every stored version of kind/name, oldest first.
func (s *Store) Versions(kind spec.Kind, name string) ([]Version, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.heads[key{kind, name}]
	if !ok || h.Deleted {
		return nil, false
	}
	var out []Version
	for _, v := range s.versions[key{kind, name}] {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, true
}

// parseVersion decodes a stored spec.
func parseVersion(v Version) (spec.Spec, error) {
	name := "stored.yaml"
	if v.Format == "json" {
		name = "stored.json"
	}
	specs, err := spec.Parse([]byte(v.Spec), name)
	if err != nil {
		return nil, err
	}
	if len(specs) != 1 {
		return nil, fmt.Errorf("stored spec holds %d documents", len(specs))
	}
	return specs[0], nil
}
