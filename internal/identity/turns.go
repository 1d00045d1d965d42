package identity

import "sync"

// turns serializes work per key (an account name) within the process,
// holding an entry only while someone waits for or holds it.
type turns struct {
	mu sync.Mutex
	m  map[string]*turn
}

type turn struct {
	sync.Mutex
	users int
}

// lock waits for key's turn and returns the function that ends it.
func (t *turns) lock(key string) (unlock func()) {
	t.mu.Lock()
	if t.m == nil {
		t.m = map[string]*turn{}
	}
	e := t.m[key]
	if e == nil {
		e = &turn{}
		t.m[key] = e
	}
	e.users++
	t.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		t.mu.Lock()
		if e.users--; e.users == 0 {
			delete(t.m, key)
		}
		t.mu.Unlock()
	}
}
