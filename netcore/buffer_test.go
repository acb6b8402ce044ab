package netcore

import (
	"bytes"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"
)

// A buffer behaves like a byte queue (the model is a plain slice), holds
// memory only while it holds bytes (after ReleaseIfEmpty), and its held
// counter always equals the slab it holds.
func TestBufferModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var held atomic.Int64
		b := buffer{held: &held}
		var model []byte
		t.Repeat(map[string]func(*rapid.T){
			"Write": func(t *rapid.T) {
				p := rapid.SliceOfN(rapid.Byte(), 0, 3000).Draw(t, "p")
				if n, err := b.Write(p); n != len(p) || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
				}
				model = append(model, p...)
			},
			"Discard": func(t *rapid.T) {
				n := rapid.IntRange(0, len(model)+10).Draw(t, "n")
				b.Discard(n)
				model = model[min(n, len(model)):]
			},
			"ReleaseIfEmpty": func(t *rapid.T) {
				b.ReleaseIfEmpty()
				if len(model) == 0 && b.Cap() != 0 {
					t.Fatalf("an empty buffer holds %d bytes after ReleaseIfEmpty", b.Cap())
				}
			},
			"": func(t *rapid.T) {
				if !bytes.Equal(b.Bytes(), model) || b.Len() != len(model) {
					t.Fatalf("buffer holds %d bytes %x, model %d bytes %x", b.Len(), b.Bytes(), len(model), model)
				}
				if held.Load() != int64(b.Cap()) {
					t.Fatalf("held counter %d, slab %d", held.Load(), b.Cap())
				}
			},
		})
		b.Release()
		if held.Load() != 0 {
			t.Fatalf("held counter %d after Release", held.Load())
		}
	})
}

func TestSlabClass(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{0, 0}, {1, 0}, {512, 0}, {513, 1}, {1024, 1}, {1025, 2}, {4 << 20, numSlabs - 1}, {4<<20 + 1, -1},
	} {
		if got := slabClass(tc.n); got != tc.class {
			t.Errorf("slabClass(%d) = %d, want %d", tc.n, got, tc.class)
		}
		if tc.class >= 0 {
			if s := getSlab(tc.n); len(s.b) != minSlab<<tc.class {
				t.Errorf("getSlab(%d) has %d bytes, want %d", tc.n, len(s.b), minSlab<<tc.class)
			}
		}
	}
	if s := getSlab(5 << 20); len(s.b) != 5<<20 {
		t.Errorf("getSlab(5 MiB) has %d bytes", len(s.b))
	}
}
