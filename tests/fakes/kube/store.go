package kube

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// event is one change in a bucket's history.
type event struct {
	typ  string // ADDED, MODIFIED, DELETED
	rv   uint64
	key  string
	obj  Obj // the object after the change; for DELETED the last state with the deletion's RV
	prev Obj // the object before the change (nil for ADDED)
}

// bucket holds one storage resource: its objects and its watch history,
// like one watch cache of the real server.
type bucket struct {
	objs    map[string]Obj // "ns/name" or "name"
	hist    []event
	horizon uint64 // events with rv <= horizon are forgotten: watches from an RV below it get 410
	// managed: per object key, field ownership (see managed.go).
	managed map[string][]*mgrEntry
}

// Store is the fake etcd plus watch caches: one global revision counter.
type Store struct {
	mu       sync.Mutex
	changed  *sync.Cond
	rv       uint64
	buckets  map[string]*bucket
	histCap  int
	watchers map[*watcher]struct{}
	now      func() time.Time
}

func newStore(histCap int) *Store {
	s := &Store{buckets: map[string]*bucket{}, histCap: histCap, watchers: map[*watcher]struct{}{}, now: time.Now}
	s.changed = sync.NewCond(&s.mu)
	return s
}

func (s *Store) bucket(r *resInfo) *bucket {
	k := r.storageKey()
	b := s.buckets[k]
	if b == nil {
		b = &bucket{objs: map[string]Obj{}, horizon: s.rv, managed: map[string][]*mgrEntry{}}
		s.buckets[k] = b
	}
	return b
}

func objKey(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

func newUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

const nameChars = "bcdfghjklmnpqrstvwxz2456789"

func randSuffix() string {
	var b [5]byte
	rand.Read(b[:])
	out := make([]byte, 5)
	for i := range b {
		out[i] = nameChars[int(b[i])%len(nameChars)]
	}
	return string(out)
}

func (s *Store) nowStr() string { return s.now().UTC().Format(time.RFC3339) }

// commit records a change under s.mu: bumps the revision, sets the
// object's resourceVersion, appends history and tells watchers.
func (s *Store) commit(r *resInfo, typ, key string, obj, prev Obj) Obj {
	b := s.bucket(r)
	s.rv++
	rvs := strconv.FormatUint(s.rv, 10)
	obj = copyObj(obj)
	meta(obj)["resourceVersion"] = rvs
	if typ == "DELETED" {
		delete(b.objs, key)
		delete(b.managed, key)
	} else {
		b.objs[key] = obj
	}
	ev := event{typ: typ, rv: s.rv, key: key, obj: obj, prev: prev}
	b.hist = append(b.hist, ev)
	s.trim(b)
	for w := range s.watchers {
		if w.bucket == b {
			w.offer(ev)
		}
	}
	s.changed.Broadcast()
	return obj
}

func (s *Store) trim(b *bucket) {
	cap := s.histCap
	if cap < 0 {
		cap = 0
	}
	if len(b.hist) <= cap {
		return
	}
	drop := len(b.hist) - cap
	last := b.hist[drop-1].rv
	// Reslice instead of copying the whole history on every write (O(1) per
	// write): clear the dropped slots so their objects can be collected; the
	// array is replaced by a compact one when append next grows it.
	clear(b.hist[:drop])
	b.hist = b.hist[drop:]
	if len(b.hist) > 0 {
		b.horizon = b.hist[0].rv - 1
	} else {
		b.horizon = last
	}
}

// compact forgets all history: watches and exact lists from any RV older
// than now answer 410.
func (s *Store) compact() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.buckets {
		b.hist = nil
		b.horizon = s.rv
	}
}

func (s *Store) setHistory(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.histCap = n
	for _, b := range s.buckets {
		s.trim(b)
	}
}

// snapshot returns the bucket's objects as they were at revision at
// (at == 0: now). It fails when the history no longer reaches back.
func (s *Store) snapshot(b *bucket, at uint64) (map[string]Obj, bool) {
	if at == 0 || at >= s.rv {
		return b.objs, true
	}
	if at < b.horizon {
		return nil, false
	}
	m := make(map[string]Obj, len(b.objs))
	for k, v := range b.objs {
		m[k] = v
	}
	for i := len(b.hist) - 1; i >= 0 && b.hist[i].rv > at; i-- {
		ev := b.hist[i]
		if ev.prev == nil {
			delete(m, ev.key)
		} else {
			m[ev.key] = ev.prev
		}
	}
	return m, true
}

// waitFor blocks (with s.mu held) until the revision reaches rv or the wait
// times out; it reports whether it got there.
func (s *Store) waitFor(rv uint64, d time.Duration) bool {
	if s.rv >= rv {
		return true
	}
	deadline := time.Now().Add(d)
	t := time.AfterFunc(d, func() {
		s.mu.Lock()
		s.changed.Broadcast()
		s.mu.Unlock()
	})
	defer t.Stop()
	for s.rv < rv && time.Now().Before(deadline) {
		s.changed.Wait()
	}
	return s.rv >= rv
}

// ---- continue tokens, in the real server's format.

type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

func encodeContinue(startKey string, rv int64) string {
	b, _ := json.Marshal(continueToken{"meta.k8s.io/v1", rv, startKey})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (string, int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", 0, fmt.Errorf("continue key is not valid: %v", err)
	}
	var c continueToken
	if err := json.Unmarshal(b, &c); err != nil {
		return "", 0, fmt.Errorf("continue key is not valid: %v", err)
	}
	if c.APIVersion != "meta.k8s.io/v1" {
		return "", 0, fmt.Errorf("continue key is not valid: server does not recognize this encoded version %v", c.APIVersion)
	}
	if c.ResourceVersion == 0 {
		return "", 0, fmt.Errorf("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
	}
	if c.StartKey == "" {
		return "", 0, fmt.Errorf("continue key is not valid: encoded start key empty (version meta.k8s.io/v1)")
	}
	if strings.Contains(c.StartKey, "..") || strings.HasPrefix(c.StartKey, "/") {
		return "", 0, fmt.Errorf("continue key is not valid: %v", c.StartKey)
	}
	return c.StartKey, c.ResourceVersion, nil
}

const (
	listTooOld     = "The resourceVersion for the provided list is too old."
	continueTooOld = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
)

type listOpts struct {
	ns       string
	sel      *selector
	rv       string
	rvMatch  string
	limit    int64
	cont     string
	tooLarge time.Duration
}

type listResult struct {
	items     []Obj
	rv        uint64
	cont      string
	remaining *int64
}

// list implements the real server's list semantics for resourceVersion,
// resourceVersionMatch, limit and continue.
func (s *Store) list(r *resInfo, o listOpts) (*listResult, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bucket(r)
	var at uint64 // 0: the newest state
	startKey := ""
	if o.cont != "" {
		k, crv, err := decodeContinue(o.cont)
		if err != nil {
			return nil, errBadRequest("invalid continue token: " + err.Error())
		}
		if o.rv != "" && o.rv != "0" {
			return nil, errBadRequest("specifying resource version is not allowed when using continue")
		}
		startKey = k
		if crv > 0 {
			at = uint64(crv)
			if at < b.horizon {
				e := errExpired(continueTooOld)
				e.cont = encodeContinue(startKey, -1)
				return nil, e
			}
		}
	} else if o.rv != "" {
		n, err := strconv.ParseUint(o.rv, 10, 64)
		if err != nil {
			return nil, errBadRequest(fmt.Sprintf("invalid resource version: resourceVersion: Invalid value: %q: strconv.ParseUint: parsing %q: invalid syntax", o.rv, o.rv))
		}
		if n == 0 {
			o.limit = 0 // served from the watch cache, which ignores limit for resourceVersion=0
		}
		exact := o.rvMatch == "Exact" || (o.rvMatch == "" && o.limit > 0 && n > 0)
		if n > s.rv {
			if !s.waitFor(n, o.tooLarge) {
				return nil, errTooLargeRV(n, s.rv)
			}
		}
		if exact && n > 0 {
			at = n
			if at < b.horizon {
				return nil, errExpired(listTooOld)
			}
		}
	}
	objs, ok := s.snapshot(b, at)
	if !ok {
		return nil, errExpired(listTooOld)
	}
	respRV := s.rv
	if at != 0 && at < s.rv {
		respRV = at
	}
	// keys relative to the list prefix, as etcd keys are.
	type kv struct {
		rel string
		o   Obj
	}
	var all []kv
	for k, v := range objs {
		rel := k
		if r.namespaced && o.ns != "" {
			if !strings.HasPrefix(k, o.ns+"/") {
				continue
			}
			rel = k[len(o.ns)+1:]
		}
		if startKey != "" && rel < startKey {
			continue
		}
		all = append(all, kv{rel, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].rel < all[j].rel })
	res := &listResult{rv: respRV, items: []Obj{}}
	for i, e := range all {
		if o.limit > 0 && int64(len(res.items)) >= o.limit {
			// more keys remain: hand out a continue token after the last one taken.
			last := all[i-1].rel
			res.cont = encodeContinue(last+"\x00", int64(respRV))
			if o.sel.empty() {
				n := int64(len(all) - i)
				res.remaining = &n
			}
			break
		}
		if o.sel.matches(e.o) {
			res.items = append(res.items, e.o)
		}
	}
	return res, nil
}

func (s *Store) get(r *resInfo, ns, name string) Obj {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bucket(r).objs[objKey(ns, name)]
}

// ---- watchers

type wevent struct {
	typ string
	obj Obj
	rv  uint64
}

type watcher struct {
	bucket   *bucket
	info     *resInfo
	ns       string
	sel      *selector
	minRV    uint64
	mu       sync.Mutex
	queue    []wevent
	signal   chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	abort    bool // stop was a drop: end without the terminating chunk
	overflow bool
}

const maxWatchQueue = 10000

func (w *watcher) push(e wevent) {
	w.mu.Lock()
	if len(w.queue) >= maxWatchQueue {
		w.overflow = true
		w.mu.Unlock()
		w.close(false)
		return
	}
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *watcher) take() []wevent {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

func (w *watcher) close(abort bool) {
	w.stopOnce.Do(func() {
		w.abort = abort
		close(w.stop)
	})
}

// convert applies the watch cache's rule: an object that stops matching
// the selector is a DELETED (its previous state, the event's RV), one that
// starts matching is ADDED.
func (w *watcher) convert(ev event) (string, Obj) {
	inNS := func(o Obj) bool { return o != nil && (w.ns == "" || getStr(o, "metadata", "namespace") == w.ns) }
	cur := ev.typ != "DELETED" && inNS(ev.obj) && w.sel.matches(ev.obj)
	old := false
	if ev.typ == "DELETED" {
		old = inNS(ev.obj) && w.sel.matches(ev.obj)
		if old {
			return "DELETED", ev.obj
		}
		return "", nil
	}
	if ev.prev != nil {
		old = inNS(ev.prev) && w.sel.matches(ev.prev)
	}
	switch {
	case cur && !old:
		return "ADDED", ev.obj
	case cur && old:
		return "MODIFIED", ev.obj
	case !cur && old:
		p := copyObj(ev.prev)
		meta(p)["resourceVersion"] = strconv.FormatUint(ev.rv, 10)
		return "DELETED", p
	}
	return "", nil
}

// offer is called with the store locked.
func (w *watcher) offer(ev event) {
	if ev.rv <= w.minRV {
		return
	}
	if t, o := w.convert(ev); t != "" {
		w.push(wevent{typ: t, obj: o, rv: ev.rv})
	}
}

type watchOpts struct {
	ns               string
	sel              *selector
	rv               string
	sendInitial      *bool
	allowBookmarks   bool
	tooLarge         time.Duration
	initialEventsEnd bool
}

// watch registers a watcher. A non-nil apiError before registration is a
// plain HTTP error; errEvent is a Status to send as a single ERROR event.
func (s *Store) watch(r *resInfo, o watchOpts) (w *watcher, errEvent *apiError, err *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bucket(r)
	w = &watcher{bucket: b, info: r, ns: o.ns, sel: o.sel, signal: make(chan struct{}, 1), stop: make(chan struct{})}
	var n uint64
	if o.rv != "" {
		var perr error
		n, perr = strconv.ParseUint(o.rv, 10, 64)
		if perr != nil {
			return nil, nil, errBadRequest(fmt.Sprintf("invalid resource version: resourceVersion: Invalid value: %q: strconv.ParseUint: parsing %q: invalid syntax", o.rv, o.rv))
		}
	}
	initial := o.rv == "" || o.rv == "0"
	if o.sendInitial != nil {
		initial = *o.sendInitial
		if initial && n > s.rv && !s.waitFor(n, o.tooLarge) {
			return nil, errTooLargeRV(n, s.rv), nil
		}
	}
	if initial {
		keys := sortedKeys(b.objs)
		for _, k := range keys {
			obj := b.objs[k]
			if (o.ns == "" || getStr(obj, "metadata", "namespace") == o.ns) && o.sel.matches(obj) {
				w.queue = append(w.queue, wevent{typ: "ADDED", obj: obj})
			}
		}
		w.minRV = s.rv
		if o.sendInitial != nil && *o.sendInitial && o.allowBookmarks {
			w.queue = append(w.queue, wevent{typ: "BOOKMARK", rv: s.rv, obj: Obj{"metadata": Obj{
				"resourceVersion": strconv.FormatUint(s.rv, 10),
				"annotations":     Obj{"k8s.io/initial-events-end": "true"}}}})
		}
	} else if o.rv != "" && o.rv != "0" {
		if n < b.horizon {
			return nil, errExpired(fmt.Sprintf("too old resource version: %d (%d)", n, b.horizon)), nil
		}
		for _, ev := range b.hist {
			if ev.rv > n {
				if t, obj := w.convert(ev); t != "" {
					w.queue = append(w.queue, wevent{typ: t, obj: obj, rv: ev.rv})
				}
			}
		}
		w.minRV = s.rv
		if n > w.minRV {
			w.minRV = n
		}
	} else {
		w.minRV = s.rv
	}
	if len(w.queue) > 0 {
		w.signal <- struct{}{}
	}
	s.watchers[w] = struct{}{}
	return w, nil, nil
}

func (s *Store) unwatch(w *watcher) {
	s.mu.Lock()
	delete(s.watchers, w)
	s.mu.Unlock()
}

// bookmark queues a BOOKMARK at the current revision (under the lock, so
// it is ordered after every event already queued).
func (s *Store) bookmark(w *watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.push(wevent{typ: "BOOKMARK", rv: s.rv, obj: Obj{"metadata": Obj{"resourceVersion": strconv.FormatUint(s.rv, 10)}}})
}

func (s *Store) dropWatches(abort bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for w := range s.watchers {
		w.close(abort)
		delete(s.watchers, w)
		n++
	}
	return n
}

func (s *Store) watchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watchers)
}
