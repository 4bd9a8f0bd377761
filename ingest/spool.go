package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The spool is a write-ahead log of segment files in spool.dir. Each
// segment is named by the spool offset of its first byte (16 hex digits,
// ".seg") and holds records framed as
//
//	length uint32 LE | CRC-32C of body uint32 LE | lines uint32 LE | body
//
// where body is InfluxDB line protocol, lines lines each ending in '\n': one
// record per group commit. A record is durable once Sync returned after it
// was appended; the subscriber acknowledges MQTT messages only then. The
// Writer reads records back by offset and Release deletes whole segments
// once everything in them has reached InfluxDB. Offsets grow for the life
// of the spool directory and never repeat.
const (
	recordHeader = 12
	segmentExt   = ".seg"
	// maxRecordBytes bounds a record body; a larger length on disk is a torn
	// or corrupt record.
	maxRecordBytes = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrSpoolClosed is returned by Spool methods after Close.
var ErrSpoolClosed = errors.New("spool closed")

type segment struct {
	base int64 // spool offset of the segment's first byte
	size int64
	f    *os.File // open for reading (and appending, for the last one)
}

// Spool is the on-disk write-ahead log between MQTT and InfluxDB. It is
// safe for concurrent use: one appender (the subscriber's committer) and any
// number of readers.
type Spool struct {
	dir      string
	segBytes int64
	log      *slog.Logger

	mu      sync.Mutex
	segs    []*segment // oldest first; the last is the active one
	start   int64      // offset of the oldest byte kept (records before it are released)
	head    int64      // end of the last synced record: readers see up to here
	tail    int64      // end of the last appended record (>= head)
	closed  bool
	changed chan struct{} // closed and replaced when head or start moves
	lock    *os.File      // dir/LOCK, held exclusively while open
}

// OpenSpool opens (creating it if needed) the spool in dir. A torn record
// at the end of the last segment (a crash during append, before its sync,
// so never acknowledged) is cut off. segmentBytes is the size at which the
// appender starts a new segment.
//
// The spool holds an exclusive lock on dir/LOCK while open: a second
// process (or a second Spool) on the same dir fails here instead of
// interleaving its records with ours.
func OpenSpool(dir string, segmentBytes int64, logger *slog.Logger) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s, err := openSpool(dir, segmentBytes, logger)
	if err != nil {
		lock.Close() // releases the lock
		return nil, err
	}
	s.lock = lock
	return s, nil
}

func openSpool(dir string, segmentBytes int64, logger *slog.Logger) (*Spool, error) {
	s := &Spool{dir: dir, segBytes: segmentBytes, log: logger.With("component", "spool", "dir", dir), changed: make(chan struct{})}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read spool dir: %w", err)
	}
	var bases []int64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segmentExt)
		if !ok || e.IsDir() {
			continue
		}
		b, err := strconv.ParseInt(name, 16, 64)
		if err != nil || b < 0 {
			continue
		}
		bases = append(bases, b)
	}
	slices.Sort(bases)
	for i, b := range bases {
		last := i == len(bases)-1
		flag := os.O_RDONLY
		if last {
			flag = os.O_RDWR
		}
		f, err := os.OpenFile(s.segPath(b), flag, 0)
		if err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("open spool segment: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			s.closeFiles()
			return nil, fmt.Errorf("stat spool segment: %w", err)
		}
		seg := &segment{base: b, size: st.Size(), f: f}
		if i > 0 {
			prev := s.segs[len(s.segs)-1]
			if prev.base+prev.size != b {
				// A gap: the previous segment was cut short by a crash before
				// the rotation's sync. Readers skip to b.
				s.log.Warn("spool segment shorter than its successor's offset", "segment", filepath.Base(s.segPath(prev.base)), "size", prev.size, "next", b)
			}
		}
		if last {
			valid, err := validPrefix(f, st.Size())
			if err != nil {
				f.Close()
				s.closeFiles()
				return nil, fmt.Errorf("scan spool segment %s: %w", f.Name(), err)
			}
			if valid < st.Size() {
				s.log.Warn("cutting a torn record off the spool's end (never acknowledged)", "segment", filepath.Base(f.Name()), "bytes", st.Size()-valid)
				if err := f.Truncate(valid); err != nil {
					f.Close()
					s.closeFiles()
					return nil, fmt.Errorf("truncate torn spool record: %w", err)
				}
				if err := f.Sync(); err != nil {
					f.Close()
					s.closeFiles()
					return nil, fmt.Errorf("sync spool segment: %w", err)
				}
			}
			seg.size = valid
		}
		s.segs = append(s.segs, seg)
	}
	if len(s.segs) == 0 {
		if err := s.newSegment(0); err != nil {
			return nil, err
		}
	}
	s.start = s.segs[0].base
	last := s.segs[len(s.segs)-1]
	s.head = last.base + last.size
	s.tail = s.head
	// A clean Close recorded how far InfluxDB had confirmed; without it (a
	// crash) the oldest segment is replayed whole, which is harmless:
	// InfluxDB keeps one point per series and timestamp.
	if b, err := os.ReadFile(filepath.Join(dir, checkpointFile)); err == nil {
		if off, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && off >= s.start && off <= s.head {
			s.start = off
		}
	}
	return s, nil
}

// checkpointFile holds the released offset, written by Close.
const checkpointFile = "checkpoint"

// validPrefix returns the length of the longest prefix of f made of whole
// records with good checksums.
func validPrefix(f *os.File, size int64) (int64, error) {
	var off int64
	var hdr [recordHeader]byte
	var body []byte
	for off+recordHeader <= size {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			return 0, err
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:]))
		if n > maxRecordBytes || off+recordHeader+n > size {
			break
		}
		body = slices.Grow(body[:0], int(n))[:n]
		if _, err := f.ReadAt(body, off+recordHeader); err != nil {
			return 0, err
		}
		if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
			break
		}
		off += recordHeader + n
	}
	return off, nil
}

func (s *Spool) segPath(base int64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x%s", base, segmentExt))
}

// newSegment creates the segment starting at base and makes its directory
// entry durable. s.mu is held (or s is not shared yet).
func (s *Spool) newSegment(base int64) error {
	f, err := os.OpenFile(s.segPath(base), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	s.segs = append(s.segs, &segment{base: base, f: f})
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open spool dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync spool dir: %w", err)
	}
	return nil
}

func (s *Spool) closeFiles() {
	for _, seg := range s.segs {
		seg.f.Close()
	}
	s.segs = nil
}

// AppendRecord frames body (lines lines of line protocol, each ending in
// '\n') as one record and appends it to the active segment, starting a new
// segment first when the active one is full. It does not sync: the record
// is durable only after the next Sync. buf is scratch space the caller may
// reuse; the returned slice is buf grown.
func (s *Spool) AppendRecord(buf, body []byte, lines int) ([]byte, error) {
	if len(body) > maxRecordBytes {
		return buf, fmt.Errorf("spool record of %d bytes exceeds %d", len(body), maxRecordBytes)
	}
	buf = buf[:0]
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(body)))
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(body, crcTable))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(lines))
	buf = append(buf, body...)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return buf, ErrSpoolClosed
	}
	seg := s.segs[len(s.segs)-1]
	if seg.size > 0 && seg.size+int64(len(buf)) > s.segBytes {
		// Seal the active segment: sync it so that everything before the
		// new segment is durable before anything after it.
		if err := seg.f.Sync(); err != nil {
			return buf, fmt.Errorf("sync spool segment: %w", err)
		}
		if err := s.newSegment(seg.base + seg.size); err != nil {
			return buf, err
		}
		seg = s.segs[len(s.segs)-1]
	}
	if _, err := seg.f.WriteAt(buf, seg.size); err != nil {
		// The partial write, if any, is past tail and overwritten by the
		// next append or cut off at the next open.
		return buf, fmt.Errorf("append to spool: %w", err)
	}
	seg.size += int64(len(buf))
	s.tail = seg.base + seg.size
	return buf, nil
}

// Sync makes every appended record durable (fsync) and visible to readers.
func (s *Spool) Sync() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSpoolClosed
	}
	seg := s.segs[len(s.segs)-1]
	tail := s.tail
	s.mu.Unlock()
	// Only the committer appends, so nothing moves seg or tail meanwhile.
	if err := seg.f.Sync(); err != nil {
		return fmt.Errorf("sync spool: %w", err)
	}
	s.mu.Lock()
	s.head = tail
	s.notify()
	s.mu.Unlock()
	return nil
}

func (s *Spool) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Bounds returns the offset of the oldest record kept, the end of the
// durable records, and a channel closed when either moves.
func (s *Spool) Bounds() (start, head int64, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start, s.head, s.changed
}

// Size returns the bytes of records appended and not yet released: what
// spool.max_bytes bounds. The files on disk may hold up to one segment more,
// since space is freed a whole segment at a time.
func (s *Spool) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tail - s.start
}

// A SpoolRecord is one record read back: its offset, the offset after it,
// and its body of Lines line-protocol lines.
type SpoolRecord struct {
	Off, Next int64
	Lines     int
	Body      []byte
}

// ErrCorruptRecord is wrapped by Read when a record fails its checksum.
var ErrCorruptRecord = errors.New("corrupt spool record")

// Read appends to recs the durable records from off on, up to maxLines lines
// in total (at least one record when one is there) and no further than end
// (0 = the durable head). It returns recs and the offset after the last
// record read. Reading an offset that was released or past the head returns
// no records. A record that fails its checksum (disk corruption: a crash
// never leaves one inside the durable range) makes Read return
// ErrCorruptRecord and the offset of the next segment, so the caller can
// count the loss and go on.
func (s *Spool) Read(recs []SpoolRecord, off, end int64, maxLines int) ([]SpoolRecord, int64, error) {
	s.mu.Lock()
	head := s.head
	if end <= 0 || end > head {
		end = head
	}
	if s.closed {
		s.mu.Unlock()
		return recs, off, ErrSpoolClosed
	}
	if off < s.start {
		off = s.start
	}
	// Find the segment holding off.
	i, _ := slices.BinarySearchFunc(s.segs, off, func(seg *segment, off int64) int {
		switch {
		case seg.base+seg.size <= off:
			return -1
		case seg.base > off:
			return 1
		}
		return 0
	})
	// Copy the segments' extents: the appender changes the last one's size
	// under s.mu, and only bytes below head are read.
	segs := make([]segment, 0, len(s.segs)-i)
	for _, seg := range s.segs[i:] {
		segs = append(segs, *seg)
	}
	s.mu.Unlock()

	lines := 0
	var hdr [recordHeader]byte
	for _, seg := range segs {
		if off < seg.base {
			off = seg.base // skip a gap left by a crash during rotation
		}
		segEnd := min(seg.base+seg.size, end)
		for off+recordHeader <= segEnd {
			if lines > 0 && lines >= maxLines {
				return recs, off, nil
			}
			if _, err := seg.f.ReadAt(hdr[:], off-seg.base); err != nil {
				return recs, off, fmt.Errorf("read spool: %w", err)
			}
			n := int64(binary.LittleEndian.Uint32(hdr[0:]))
			if n > maxRecordBytes || off+recordHeader+n > segEnd {
				return recs, seg.base + seg.size, fmt.Errorf("%w at offset %d: length %d", ErrCorruptRecord, off, n)
			}
			body := make([]byte, n)
			if _, err := seg.f.ReadAt(body, off-seg.base+recordHeader); err != nil && !errors.Is(err, io.EOF) {
				return recs, off, fmt.Errorf("read spool: %w", err)
			}
			if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
				return recs, seg.base + seg.size, fmt.Errorf("%w at offset %d: checksum mismatch", ErrCorruptRecord, off)
			}
			cnt := int(binary.LittleEndian.Uint32(hdr[8:]))
			recs = append(recs, SpoolRecord{Off: off, Next: off + recordHeader + n, Lines: cnt, Body: body})
			lines += cnt
			off += recordHeader + n
		}
		if off >= end {
			break
		}
	}
	return recs, off, nil
}

// Release deletes every segment that lies wholly before off: their records
// reached InfluxDB. The active segment is never deleted.
func (s *Spool) Release(off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrSpoolClosed
	}
	if off > s.start {
		s.start = min(off, s.head)
	}
	var errs []error
	n := 0
	for n < len(s.segs)-1 && s.segs[n].base+s.segs[n].size <= s.start {
		seg := s.segs[n]
		seg.f.Close()
		if err := os.Remove(s.segPath(seg.base)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove spool segment: %w", err))
		}
		n++
	}
	if n > 0 {
		s.segs = slices.Delete(s.segs, 0, n)
		if err := syncDir(s.dir); err != nil {
			errs = append(errs, err)
		}
	}
	s.notify()
	return errors.Join(errs...)
}

// Close syncs and closes the segment files.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.segs[len(s.segs)-1].f.Sync()
	s.closeFiles()
	s.notify()
	if err != nil {
		err = fmt.Errorf("sync spool: %w", err)
	} else {
		err = s.writeCheckpoint()
	}
	if s.lock != nil {
		s.lock.Close() // releases the lock, after the checkpoint
	}
	return err
}

// writeCheckpoint records the released offset (temp file, fsync, rename).
func (s *Spool) writeCheckpoint() error {
	tmp := filepath.Join(s.dir, checkpointFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write spool checkpoint: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d\n", s.start)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, checkpointFile))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("write spool checkpoint: %w", err)
	}
	return nil
}
