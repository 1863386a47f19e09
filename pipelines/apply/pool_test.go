package apply

import (
	"bytes"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestSizeClass(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{0, 0}, {1, 0}, {minBuf, 0},
		{minBuf + 1, 1}, {2 * minBuf, 1},
		{2*minBuf + 1, 2}, {4 * minBuf, 2},
		{minBuf << 11, 11}, {minBuf<<11 + 1, 12},
	} {
		if got := sizeClass(tc.n); got != tc.want {
			t.Errorf("sizeClass(%d) = %d, want %d", tc.n, got, tc.want)
		}
		// A slice of the class's size holds n.
		if c := sizeClass(tc.n); c < bufClasses && minBuf<<c < tc.n {
			t.Errorf("class %d (%d bytes) is too small for %d", c, minBuf<<c, tc.n)
		}
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
		if want := minBuf << sizeClass(n); cap(b) != want {
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
	for _, tc := range []struct {
		n, want int
		ok      bool
	}{
		{10, 0, false}, {minBuf - 1, 0, false},
		{minBuf, 0, true}, {2*minBuf - 1, 0, true},
		{2 * minBuf, 1, true}, {3 * minBuf, 1, true}, {4 * minBuf, 2, true},
		{minBuf << 11, 11, true}, {minBuf<<12 - 1, 11, true}, {minBuf << 12, 12, false},
	} {
		c, ok := putClass(tc.n)
		if ok != tc.ok || (ok && c != tc.want) {
			t.Errorf("putClass(%d) = %d, %v; want %d, %v", tc.n, c, ok, tc.want, tc.ok)
			continue
		}
		// Whatever a class hands out holds what a request of that
		// class asked for: a slice put back in class c holds minBuf<<c.
		if ok && tc.n < minBuf<<c {
			t.Errorf("capacity %d put in class %d, whose requests need %d", tc.n, c, minBuf<<c)
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
