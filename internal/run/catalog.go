package run

import (
	"sync"

	"github.com/airlockhq/airlock/internal/procedure"
	"github.com/airlockhq/airlock/internal/store"
)

// catalog keeps, for requests, each procedure as a request last read it
// with its active version parsed, so that the next request of it reads
// neither. Nothing is trusted from it: a request planned on an entry
// stores its run only if the procedure, read again in the run's write
// transaction, is the entry's in every field (procedures change only by
// that row, versions never), and plans again from the store otherwise —
// as it does whenever a plan made on an entry fails or is refused. So an
// entry another replica made stale costs one plan more, never a decision
// on what it no longer is.
type catalog struct {
	mu sync.Mutex
	m  map[string]*entry
}

// entry is a procedure with its active version (nil if none) and that
// version's definition, parsed (nil if it does not parse), which hashes
// to the version's digest when digestOK.
type entry struct {
	proc     *store.Procedure
	active   *store.ProcedureVersion
	def      *procedure.Procedure
	digestOK bool
}

// maxCatalog bounds the entries kept; past it they are dropped together.
const maxCatalog = 512

func newEntry(proc *store.Procedure, active *store.ProcedureVersion) *entry {
	e := &entry{proc: proc, active: active}
	if active != nil {
		if def, err := procedure.FromCanonical(active.Definition); err == nil {
			e.def, e.digestOK = def, def.Digest() == active.Digest
		}
	}
	return e
}

func (c *catalog) get(name string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name]
}

func (c *catalog) put(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCatalog {
		c.m = map[string]*entry{}
	}
	c.m[e.proc.Name] = e
}

func (c *catalog) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}

// sameProcedure reports whether a and b are the same procedure in every
// field a write can change.
func sameProcedure(a, b *store.Procedure) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Owner == b.Owner && a.OwnerFixed == b.OwnerFixed &&
		a.ActiveVersionID == b.ActiveVersionID && a.RetiredAt.Equal(b.RetiredAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}
