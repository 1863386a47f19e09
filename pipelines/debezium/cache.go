package debezium

import (
	"sync"
	"sync/atomic"
)

// maxCached bounds each cache; past it the cache starts again empty.
const maxCached = 4096

// boundedCache is a concurrent map that forgets everything when it grows
// past maxCached entries. It caches what the codec derives from schemas.
type boundedCache[K comparable, V any] struct {
	m atomic.Pointer[sync.Map]
	n atomic.Int64
}

func (c *boundedCache[K, V]) load(k K) (V, bool) {
	var zero V
	m := c.m.Load()
	if m == nil {
		return zero, false
	}
	v, ok := m.Load(k)
	if !ok {
		return zero, false
	}
	return v.(V), true
}

func (c *boundedCache[K, V]) store(k K, v V) {
	m := c.m.Load()
	if m == nil || c.n.Add(1) > maxCached {
		c.n.Store(1)
		m = new(sync.Map)
		c.m.Store(m)
	}
	m.Store(k, v)
}
