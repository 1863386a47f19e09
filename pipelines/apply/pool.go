package apply

import (
	"math/bits"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchPool lends franz-go the memory it decompresses record batches into
// and the Record slices it decodes them into (kgo.WithPools); a batch's
// memory comes back when every record of it was recycled, which the runner
// does once the records are applied. Without it each fetched batch is a
// fresh allocation of its uncompressed size, zeroed: JSON change events are
// kilobytes each, so that was most of what a pipeline allocated, and
// collecting it most of its garbage collection.
//
// Nothing decoded from a record may alias its key, value or headers: the
// memory is zeroed and handed to another fetch once the record is
// recycled. The decoders copy what they keep.
type fetchPool struct {
	// bufs[c] holds byte slices of capacity at least minBuf<<c.
	bufs [bufClasses]sync.Pool
	recs sync.Pool // *[]kgo.Record
}

const (
	minBufShift = 16 // 64 KiB: smaller batches are not worth pooling
	minBuf      = 1 << minBufShift
	bufClasses  = 12 // up to 128 MiB
	// guessRatio guesses the uncompressed size of a batch from its
	// compressed size when the codec does not say.
	guessRatio = 8
)

// fetchMemory are the client options that make a consumer take its
// memory from a fetchPool. Records must then be recycled once used.
func fetchMemory() []kgo.Opt {
	p := &fetchPool{}
	return []kgo.Opt{kgo.WithPools(p), kgo.WithDecompressor(newDecompressor(p))}
}

var (
	_ kgo.PoolDecompressBytes = (*fetchPool)(nil)
	_ kgo.PoolRecords         = (*fetchPool)(nil)
)

// GetDecompressBytes returns an empty slice with room for the batch src
// decompresses to: the size a zstd frame header records (the producers we
// know record it), else a guess. A recorded size over what a batch may hold
// is not believed; one up to it is allocated before decoding, as the zstd
// decoder itself would, after franz-go checked the batch's CRC. A slice
// that turns out too small is grown by the codec, and the grown one comes
// back here.
func (p *fetchPool) GetDecompressBytes(src []byte, codec kgo.CompressionCodecType) []byte {
	n := len(src) * guessRatio
	if codec == kgo.CodecZstd {
		var h zstd.Header
		if h.Decode(src) == nil && h.HasFCS && h.FrameContentSize <= maxBatchBytes {
			n = int(h.FrameContentSize)
		}
	}
	c := sizeClass(n)
	if c >= bufClasses {
		return make([]byte, 0, n)
	}
	if b, ok := p.bufs[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, minBuf<<c)
}

// PutDecompressBytes takes back a slice franz-go is done with (zeroed).
func (p *fetchPool) PutDecompressBytes(b []byte) {
	c, ok := putClass(cap(b))
	if !ok {
		return
	}
	b = b[:0]
	p.bufs[c].Put(&b)
}

// putClass is the class a slice of capacity n goes back to: the largest
// whose size it meets. Slices smaller than the smallest class, or larger
// than the largest, are not kept.
func putClass(n int) (int, bool) {
	if n < minBuf {
		return 0, false
	}
	c := bits.Len(uint(n)) - 1 - minBufShift
	return c, c < bufClasses
}

// GetRecords returns a slice of at least n records.
func (p *fetchPool) GetRecords(n int) []kgo.Record {
	if rs, ok := p.recs.Get().(*[]kgo.Record); ok && cap(*rs) >= n {
		return (*rs)[:0]
	}
	return make([]kgo.Record, 0, n)
}

// PutRecords takes back a slice whose records were all recycled.
func (p *fetchPool) PutRecords(rs []kgo.Record) {
	rs = rs[:0]
	p.recs.Put(&rs)
}

// sizeClass is the smallest class whose slices hold n bytes.
func sizeClass(n int) int {
	if n <= minBuf {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}
