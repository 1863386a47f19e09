package apply

import (
	"math/bits"
	"sync"
	"sync/atomic"

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
	// bufs[c] holds byte slices of capacity at least classSize(c).
	bufs [bufClasses]sync.Pool
	recs sync.Pool // *[]kgo.Record
	// ratios[codec] is the decompressed to compressed size ratio of the
	// codec's last batches, in sixteenths (learn); 0 until one was seen. Codecs
	// whose batches do not say their size (lz4, gzip, zstd without a
	// content size) are sized from it: a guess too small has the codec
	// grow its output by doubling, allocating and copying a few times
	// per batch a slice that is then of no use to the pool.
	ratios [ratioCodecs]atomic.Uint32
}

const (
	minBufShift = 16 // 64 KiB: smaller batches are not worth pooling
	minBuf      = 1 << minBufShift
	// Classes step by a quarter of a power of two (64, 80, 96, 112,
	// 128, 160 KiB, ...), so a slice is at most a quarter larger than
	// what was asked for: a batch of just over 1 MiB, what producers
	// make by default, takes 1.25 MiB, not 2.
	classSteps = 4
	bufClasses = 11*classSteps + 1 // up to 128 MiB
	// guessRatio guesses the uncompressed size of a batch from its
	// compressed size when the codec does not say and no batch of the
	// codec was seen yet.
	guessRatio = 8
	// maxRatio bounds a learned ratio: one batch that compresses
	// exceptionally well (all tombstones, one row repeated) must not make
	// the next ones take far more memory than they need.
	maxRatio    = 64
	ratioCodecs = int(kgo.CodecZstd) + 1
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
// know record it), else a guess from the ratio of the codec's last batch
// (learn). A recorded size over what a batch may hold is not believed; one
// up to it is allocated before decoding, as the zstd decoder itself would,
// after franz-go checked the batch's CRC. A slice that turns out too small
// is grown by the codec, and the grown one comes back here.
func (p *fetchPool) GetDecompressBytes(src []byte, codec kgo.CompressionCodecType) []byte {
	n := p.guess(len(src), codec)
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
	return make([]byte, 0, classSize(c))
}

// guess is the size a batch of codec compressed to n bytes decompresses
// to, from the ratios of the codec's last batches (learn), with a little
// room to spare: batches of one topic compress alike, but not exactly.
// The streaming codecs (lz4, gzip) also need 512 bytes free to see the end
// of their input.
func (p *fetchPool) guess(n int, codec kgo.CompressionCodecType) int {
	r := uint32(guessRatio * 16)
	if int(codec) < ratioCodecs {
		if l := p.ratios[codec].Load(); l > 0 {
			r = l
		}
	}
	g := n * int(r) / 16
	return min(g+g/16+1024, maxBatchBytes)
}

// learn records the ratio of a batch of codec that was compressed to n
// bytes and decompressed to out. The ratio kept is the highest of the
// last batches', decaying by a sixteenth per batch: the small batches a
// producer flushes when it lingers compress worse than full ones, and
// sizing the full batch that follows one from its ratio would have the
// codec grow it. (On the apply benchmark's topic, with LZ4, ratios ranged
// from 6 to 40; keeping the last one left 1 batch in 5 too small.)
func (p *fetchPool) learn(codec kgo.CompressionCodecType, n, out int) {
	if n <= 0 || int(codec) >= ratioCodecs {
		return
	}
	seen := uint32(min(max(out*16/n, 16), maxRatio*16))
	old := p.ratios[codec].Load() // a race with another learn loses one batch's ratio: harmless
	p.ratios[codec].Store(max(seen, old-old/16))
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
	e := bits.Len(uint(n)) - 1 // 1<<e <= n < 2<<e
	sub := (n - 1<<e) >> (e - 2)
	c := (e-minBufShift)*classSteps + sub
	return c, c < bufClasses
}

// classSize is the capacity of class c's slices.
func classSize(c int) int {
	e, sub := c/classSteps, c%classSteps
	return minBuf << e * (classSteps + sub) / classSteps
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
	e := bits.Len(uint(n-1)) - 1 // 1<<e < n <= 2<<e
	step := 1 << (e - 2)
	sub := (n - 1<<e + step - 1) / step // 1 to classSteps
	return (e-minBufShift)*classSteps + sub
}
