package apply

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestSizeClass(t *testing.T) {
	const k = 1 << 10
	for _, tc := range []struct{ n, want int }{
		{0, 0}, {1, 0}, {minBuf, 0},
		{minBuf + 1, 1}, {80 * k, 1}, {80*k + 1, 2}, {112 * k, 3}, {112*k + 1, 4}, {128 * k, 4},
		{128*k + 1, 5}, {160 * k, 5}, {1 << 20, 16}, {1<<20 + 1, 17}, {1280 * k, 17}, {1280*k + 1, 18},
		{minBuf << 11, 44}, {minBuf<<11 + 1, 45},
	} {
		if got := sizeClass(tc.n); got != tc.want {
			t.Errorf("sizeClass(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	// The class of n holds n, and the one below it does not; its
	// slices are at most a quarter larger than n.
	for n := 1; n <= minBuf<<11; n += 1 + n/17 {
		c := sizeClass(n)
		if classSize(c) < n || (c > 0 && classSize(c-1) >= n) {
			t.Fatalf("sizeClass(%d) = %d of %d bytes; class below: %d bytes", n, c, classSize(c), classSize(max(c-1, 0)))
		}
		if n > minBuf && classSize(c) > n+n/4 {
			t.Fatalf("sizeClass(%d): %d bytes, over a quarter more", n, classSize(c))
		}
	}
	if got := classSize(bufClasses - 1); got != 128<<20 {
		t.Errorf("largest class: %d bytes, want 128 MiB", got)
	}
}

// zstdFrame compresses n bytes the way Sluice's producers do: one frame
// that records its content size.
func zstdFrame(t *testing.T, n int) (plain, frame []byte) {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	plain = bytes.Repeat([]byte(`{"id":1,"name":"x"}`), n/19+1)[:n]
	return plain, enc.EncodeAll(plain, nil)
}

func TestFetchPoolSizesFromZstdHeader(t *testing.T) {
	p := &fetchPool{}
	for _, n := range []int{100, minBuf + 1, 5 * minBuf, 40 * minBuf} {
		_, frame := zstdFrame(t, n)
		b := p.GetDecompressBytes(frame, kgo.CodecZstd)
		if len(b) != 0 || cap(b) < n {
			t.Errorf("%d bytes: got len %d cap %d", n, len(b), cap(b))
		}
		if want := classSize(sizeClass(n)); cap(b) != want {
			t.Errorf("%d bytes: cap %d, want the class size %d", n, cap(b), want)
		}
	}
	// A header that claims more than a batch may hold is not believed.
	forged := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0x80, 0, 0, 0, 1, 0, 0}
	var h zstd.Header
	if err := h.Decode(forged); err != nil || !h.HasFCS || h.FrameContentSize != 1<<39 {
		t.Fatalf("forged header: %v, %+v", err, h)
	}
	if b := p.GetDecompressBytes(forged, kgo.CodecZstd); cap(b) > minBuf {
		t.Errorf("forged header: cap %d, want a guess from its %d bytes", cap(b), len(forged))
	}
	// Without a header, a guess from the compressed size.
	if b := p.GetDecompressBytes(make([]byte, minBuf), kgo.CodecGzip); cap(b) < minBuf*guessRatio {
		t.Errorf("gzip guess: cap %d, want at least %d", cap(b), minBuf*guessRatio)
	}
}

func TestPutClass(t *testing.T) {
	const k = 1 << 10
	for _, tc := range []struct {
		n, want int
		ok      bool
	}{
		{10, 0, false}, {minBuf - 1, 0, false},
		{minBuf, 0, true}, {80*k - 1, 0, true}, {80 * k, 1, true}, {127 * k, 3, true},
		{128 * k, 4, true}, {192 * k, 6, true}, {1 << 20, 16, true}, {2<<20 - 1, 19, true},
		{minBuf << 11, 44, true}, {minBuf<<12 - 1, 47, false}, {minBuf << 12, 48, false},
	} {
		c, ok := putClass(tc.n)
		if ok != tc.ok || (ok && c != tc.want) {
			t.Errorf("putClass(%d) = %d, %v; want %d, %v", tc.n, c, ok, tc.want, tc.ok)
		}
	}
	// Whatever a class hands out holds what a request of that class
	// asked for: a slice put back in class c holds classSize(c), and
	// would not hold the class above.
	for n := minBuf; n < minBuf<<12; n += 1 + n/13 {
		c, ok := putClass(n)
		if !ok {
			if c < bufClasses {
				t.Fatalf("putClass(%d) = %d, not kept", n, c)
			}
			continue
		}
		if classSize(c) > n || classSize(c+1) <= n {
			t.Fatalf("capacity %d put in class %d of %d bytes (next %d)", n, c, classSize(c), classSize(c+1))
		}
	}
}

// TestFetchPoolGets checks what the pool hands out, pooled or fresh
// (sync.Pool may drop what was put back, and does at random under -race).
func TestFetchPoolGets(t *testing.T) {
	p := &fetchPool{}
	for range 20 {
		for _, n := range []int{1, minBuf, 3 * minBuf, 9 * minBuf} {
			b := p.GetDecompressBytes(make([]byte, max(1, n/guessRatio)), kgo.CodecGzip)
			if len(b) != 0 || cap(b) < n/guessRatio*guessRatio {
				t.Fatalf("request for %d: len %d cap %d", n, len(b), cap(b))
			}
			p.PutDecompressBytes(append(b, 1))
		}
		rs := p.GetRecords(10)
		if len(rs) != 0 || cap(rs) < 10 {
			t.Fatalf("GetRecords(10): len %d cap %d", len(rs), cap(rs))
		}
		p.PutRecords(rs[:7])
		if more := p.GetRecords(50); len(more) != 0 || cap(more) < 50 {
			t.Fatalf("GetRecords(50): len %d cap %d", len(more), cap(more))
		}
	}
}

// TestFetchPoolLearnsRatio checks that batches of a codec that does not
// record its content size are sized from the codec's last batch, so that
// decompressing does not grow the slice, and that the ratio learned is
// bounded.
func TestFetchPoolLearnsRatio(t *testing.T) {
	plain := benchBatch()
	for _, cc := range []kgo.CompressionCodec{kgo.Lz4Compression(), kgo.GzipCompression()} {
		comp, err := kgo.DefaultCompressor(cc)
		if err != nil {
			t.Fatal(err)
		}
		c, codec := comp.Compress(new(bytes.Buffer), plain)
		c = bytes.Clone(c)
		if len(c)*guessRatio >= len(plain) {
			t.Fatalf("%s: %d bytes compress to %d: the test needs a ratio above %d", codecName(codec), len(plain), len(c), guessRatio)
		}
		p := &fetchPool{}
		d := newDecompressor(p)
		if b := p.GetDecompressBytes(c, codec); cap(b) >= len(plain) {
			t.Fatalf("%s: first guess already %d bytes", codecName(codec), cap(b))
		}
		for i := range 3 {
			want := p.GetDecompressBytes(c, codec)
			p.PutDecompressBytes(want)
			out, err := d.Decompress(c, codec)
			if err != nil || !bytes.Equal(out, plain) {
				t.Fatalf("%s: round trip: %d bytes, %v", codecName(codec), len(out), err)
			}
			// From the second batch on, the slice handed out
			// held the batch: the codec did not grow it.
			if i > 0 && cap(out) != cap(want) {
				t.Errorf("%s batch %d: decompressed into %d bytes of capacity, handed out %d for %d bytes", codecName(codec), i, cap(out), cap(want), len(plain))
			}
			clear(out[:cap(out)])
			p.PutDecompressBytes(out)
		}
	}
	p := &fetchPool{}
	p.learn(kgo.CodecLz4, 1000, 1_000_000) // 1000:1
	if g := p.guess(1000, kgo.CodecLz4); g > 1000*maxRatio*2 {
		t.Errorf("after a batch of ratio 1000, guess for 1000 bytes: %d, want at most about %d", g, 1000*maxRatio)
	}
	// A lower ratio takes over as the highest decays.
	for range 100 {
		p.learn(kgo.CodecLz4, 1000, 2000)
	}
	if g := p.guess(1000, kgo.CodecLz4); g < 2000 || g > 2000+2000/8+1024 {
		t.Errorf("after batches of ratio 2, guess for 1000 bytes: %d", g)
	}
	p.learn(kgo.CodecLz4, 1000, 10) // expanded: taken as ratio 1
	p.learn(kgo.CodecLz4, 1000, 1000)
	if g := p.guess(1000, kgo.CodecLz4); g < 1000 {
		t.Errorf("after batches that did not compress, guess for 1000 bytes: %d", g)
	}
	p.learn(kgo.CodecLz4, 0, 10)                                // ignored
	p.learn(kgo.CompressionCodecType(9), 10, 1000)              // unknown codec: ignored
	if g := p.guess(1<<40, kgo.CodecGzip); g != maxBatchBytes { // bounded
		t.Errorf("guess for a huge batch: %d", g)
	}
}

func TestDecompressor(t *testing.T) {
	p := &fetchPool{}
	d := newDecompressor(p)
	for _, n := range []int{10, minBuf * 3} {
		plain, frame := zstdFrame(t, n)
		for range 2 { // the second time with a pooled decoder
			out, err := d.Decompress(frame, kgo.CodecZstd)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, plain) {
				t.Fatalf("%d bytes: zstd round trip differs", n)
			}
			p.PutDecompressBytes(out)
		}
	}
	// Other codecs go to franz-go's decompressor.
	gz, err := kgo.DefaultCompressor(kgo.GzipCompression())
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("a gzip batch, a gzip batch, a gzip batch")
	c, codec := gz.Compress(new(bytes.Buffer), plain)
	if codec != kgo.CodecGzip {
		t.Fatalf("codec %v", codec)
	}
	out, err := d.Decompress(bytes.Clone(c), codec)
	if err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("gzip: %q, %v", out, err)
	}
	// Corrupt input is an error, and its buffer is not lost.
	_, frame := zstdFrame(t, 1000)
	frame[len(frame)/2] ^= 0xff
	frame = frame[:len(frame)-3]
	if _, err := d.Decompress(frame, kgo.CodecZstd); err == nil {
		t.Fatal("corrupt zstd frame decompressed")
	}
}

func TestDecompressorSizeLimit(t *testing.T) {
	d := newDecompressor(&fetchPool{})
	d.maxBytes = 1 << 20
	_, frame := zstdFrame(t, 2<<20)
	if _, err := d.Decompress(frame, kgo.CodecZstd); !errors.Is(err, kgo.ErrMaxDecompress) {
		t.Fatalf("over the limit: %v, want kgo.ErrMaxDecompress", err)
	}
	_, frame = zstdFrame(t, 1<<19)
	if _, err := d.Decompress(frame, kgo.CodecZstd); err != nil {
		t.Fatalf("under the limit: %v", err)
	}
	// The same limit for franz-go's codecs.
	gz, err := kgo.DefaultCompressor(kgo.GzipCompression())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1 << 19, 2 << 20} {
		plain, _ := zstdFrame(t, n)
		c, codec := gz.Compress(new(bytes.Buffer), plain)
		_, err := d.Decompress(bytes.Clone(c), codec)
		if over := n > 1<<20; over != errors.Is(err, kgo.ErrMaxDecompress) {
			t.Errorf("gzip batch of %d bytes: %v", n, err)
		}
	}
}

// benchBatch is about what a 1 MiB producer batch of JSON change events
// is: records that repeat their schema and differ in a few values.
func benchBatch() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, `{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},`+
			`{"type":"string","optional":true,"field":"name"}],"optional":false,"name":"bench.Value"},`+
			`"payload":{"before":null,"after":{"id":%d,"name":"%x"},"op":"c","ts_ms":%d}}`, i, i*7919, 1700000000000+i)
	}
	return b.Bytes()
}

// BenchmarkDecompress decompresses a batch per codec through the pooled
// decompressor as a pipeline's consumer does, giving the memory back as
// recycled records do.
func BenchmarkDecompress(b *testing.B) {
	plain := benchBatch()
	for _, cc := range []kgo.CompressionCodec{kgo.ZstdCompression(), kgo.Lz4Compression(), kgo.SnappyCompression(), kgo.GzipCompression()} {
		comp, err := kgo.DefaultCompressor(cc)
		if err != nil {
			b.Fatal(err)
		}
		c, codec := comp.Compress(new(bytes.Buffer), plain)
		c = bytes.Clone(c)
		b.Run(codecName(codec), func(b *testing.B) {
			p := &fetchPool{}
			d := newDecompressor(p)
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				out, err := d.Decompress(c, codec)
				if err != nil || len(out) != len(plain) {
					b.Fatalf("%d bytes, %v", len(out), err)
				}
				clear(out[:cap(out)])
				p.PutDecompressBytes(out)
			}
		})
	}
}
