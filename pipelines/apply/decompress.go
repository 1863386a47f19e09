package apply

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxBatchBytes bounds what one fetched batch may decompress to, as
// franz-go's own default does (kgo.MaxDecompressBatchBytes does not reach a
// custom decompressor: this is the limit for every codec).
const maxBatchBytes = 1 << 30

// decompressor is franz-go's decompressor but for zstd, the codec Sluice
// produces with, which it decodes without verifying zstd's own checksum of
// the content: the record batch's CRC-32C, which franz-go verifies, already
// covers the compressed bytes, and hashing every decompressed byte a second
// time was a tenth of the decompression's cost. Output memory comes from
// the fetch pool (see fetchPool), which franz-go gives it back to.
type decompressor struct {
	pool     *fetchPool
	other    kgo.Decompressor
	maxBytes uint64    // what one batch may decompress to
	decoders sync.Pool // *zstd.Decoder
}

func newDecompressor(pool *fetchPool) *decompressor {
	return &decompressor{pool: pool, other: kgo.DefaultDecompressor(pool), maxBytes: maxBatchBytes}
}

// Decompress decompresses src, compressed with codec.
func (d *decompressor) Decompress(src []byte, codec kgo.CompressionCodecType) ([]byte, error) {
	if codec != kgo.CodecZstd {
		out, err := d.other.Decompress(src, codec)
		if err == nil && codec != kgo.CodecNone {
			d.pool.learn(codec, len(src), len(out))
		}
		if err == nil && codec != kgo.CodecNone && uint64(len(out)) > d.maxBytes {
			// franz-go's decompressor, made here, does not take the
			// client's limit: the same one applies to every codec.
			clear(out[:cap(out)])
			d.pool.PutDecompressBytes(out)
			return nil, fmt.Errorf("%w: %s batch of %d bytes", kgo.ErrMaxDecompress, codecName(codec), len(out))
		}
		return out, err
	}
	dec, ok := d.decoders.Get().(*zstd.Decoder)
	if !ok {
		var err error
		dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.IgnoreChecksum(true),
			zstd.WithDecoderMaxMemory(d.maxBytes))
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
	}
	defer d.decoders.Put(dec)
	dst := d.pool.GetDecompressBytes(src, codec)
	out, err := dec.DecodeAll(src, dst)
	if err != nil {
		// No record will hold the slice: it goes back now, cleared
		// as franz-go clears what it gives back.
		clear(dst[:cap(dst)])
		d.pool.PutDecompressBytes(dst)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return nil, fmt.Errorf("%w: %w", kgo.ErrMaxDecompress, err)
		}
		return nil, err
	}
	d.pool.learn(codec, len(src), len(out))
	return out, nil
}

func codecName(c kgo.CompressionCodecType) string {
	switch c {
	case kgo.CodecGzip:
		return "gzip"
	case kgo.CodecSnappy:
		return "snappy"
	case kgo.CodecLz4:
		return "lz4"
	case kgo.CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec %d", c)
}
