package fleet

import (
	"sync"
	"testing"
)

// Receivers sharing one store (a shared-subscription group, agent/crashtest
// TestSharedReceiversSurviveAKill) open its fleet database at the same moment: each must
// open it, none may run a migration step another has applied.
func TestStoreSharedByReceiversOpensInEach(t *testing.T) {
	for round := 0; round < 5; round++ {
		dir := t.TempDir()
		const n = 4
		var wg sync.WaitGroup
		errs := make([]error, n)
		dbs := make([]*DB, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dbs[i], errs[i] = Open(dir)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: receiver %d: %v", round, i, err)
			}
			dbs[i].Close()
		}
	}
}
