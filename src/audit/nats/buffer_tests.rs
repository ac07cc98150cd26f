//! Unit tests of the disk buffer: segments, replay order, acknowledgement,
//! bounds, and recovery from a half-written segment.

use super::super::segment::read;
use super::*;
use std::sync::Mutex;

fn payload(i: u64) -> Vec<u8> {
    format!("{{\"record\":{i:04},\"pad\":\"{}\"}}", "x".repeat(40)).into_bytes()
}

fn append_range(b: &mut DiskBuffer, range: std::ops::Range<u64>) {
    let data: Vec<Vec<u8>> = range.clone().map(payload).collect();
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let r = b.append(&refs, false);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.count, refs.len(), "everything fits");
}

fn read_all(b: DiskBuffer) -> (Mutex<DiskBuffer>, Vec<Frame>) {
    let start = b.start();
    let m = Mutex::new(b);
    let frames = read(&m, start, usize::MAX).unwrap();
    (m, frames)
}

fn seqs(frames: &[Frame]) -> Vec<u64> {
    frames.iter().map(|f| f.seq).collect()
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn appends_span_segments_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut b, rec) = DiskBuffer::open_with(dir.path(), 1 << 20, 500).unwrap();
    assert_eq!(rec, Recovered::default());
    append_range(&mut b, 0..10);
    append_range(&mut b, 10..25);
    assert_eq!(
        b.unacked_bytes(),
        25 * (HEADER as u64 + payload(0).len() as u64)
    );
    let files = segment_files(dir.path());
    assert!(files.len() >= 4, "small segments roll: {files:?}");
    assert_eq!(files[0], "00000000000000000001.seg");
    let (m, frames) = read_all(b);
    assert_eq!(seqs(&frames), (1..=25).collect::<Vec<_>>());
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.payload, payload(i as u64));
    }
    // Reading on from the middle gives the rest, limited to `max`.
    let rest = read(&m, frames[9].end, 3).unwrap();
    assert_eq!(seqs(&rest), vec![11, 12, 13]);
}

#[test]
fn acknowledged_segments_are_deleted_and_the_rest_replays_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut b, _) = DiskBuffer::open_with(dir.path(), 1 << 20, 500).unwrap();
    append_range(&mut b, 0..25);
    let (m, frames) = read_all(b);
    let before = segment_files(dir.path()).len();
    {
        let mut b = m.lock().unwrap();
        b.ack(frames[11].seq, frames[11].end).unwrap();
        assert_eq!(b.acked(), 12);
        assert_eq!(
            b.unacked_bytes(),
            13 * (HEADER as u64 + payload(0).len() as u64)
        );
    }
    let after = segment_files(dir.path());
    assert!(after.len() < before, "{after:?}");
    assert_eq!(
        fs::read_to_string(dir.path().join("acked")).unwrap(),
        "12\n"
    );
    drop(m);
    // A restart replays exactly the unacknowledged records, in order, and
    // numbering goes on where it stopped.
    let (mut b, rec) = DiskBuffer::open_with(dir.path(), 1 << 20, 500).unwrap();
    assert_eq!(rec.records, 13);
    assert_eq!(rec.cut_bytes, 0);
    append_range(&mut b, 25..27);
    let (_, frames) = read_all(b);
    assert_eq!(seqs(&frames), (13..=27).collect::<Vec<_>>());
    assert_eq!(frames[0].payload, payload(12));
    assert_eq!(frames.last().unwrap().payload, payload(26));
}

#[test]
fn a_half_written_frame_is_cut_at_open_and_its_number_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut b, _) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    append_range(&mut b, 0..5);
    drop(b);
    let seg = dir.path().join(segment_name(1));
    let whole = fs::metadata(&seg).unwrap().len();
    // A crash in the middle of the sixth frame's write.
    let mut partial = Vec::new();
    frame::encode(6, &payload(5), &mut partial);
    partial.truncate(partial.len() / 2);
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&partial)
        .unwrap();
    let (mut b, rec) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(rec.records, 5);
    assert_eq!(rec.cut_bytes, partial.len() as u64);
    assert_eq!(fs::metadata(&seg).unwrap().len(), whole, "tail cut off");
    append_range(&mut b, 100..101);
    let (_, frames) = read_all(b);
    // Record 6 never reached the disk whole, so it was never published:
    // its number goes to the next record.
    assert_eq!(seqs(&frames), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(frames[5].payload, payload(100));
}

#[test]
fn a_damaged_frame_cuts_the_segment_there() {
    let dir = tempfile::tempdir().unwrap();
    let (mut b, _) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    append_range(&mut b, 0..4);
    drop(b);
    let seg = dir.path().join(segment_name(1));
    let mut bytes = fs::read(&seg).unwrap();
    let frame = HEADER + payload(0).len();
    bytes[2 * frame + HEADER + 3] ^= 0x20;
    fs::write(&seg, &bytes).unwrap();
    let (b, rec) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(rec.records, 2);
    assert_eq!(rec.cut_bytes, 2 * frame as u64);
    let (_, frames) = read_all(b);
    assert_eq!(seqs(&frames), vec![1, 2]);
}

#[test]
fn a_full_buffer_takes_what_fits_until_acknowledged_or_forced() {
    let dir = tempfile::tempdir().unwrap();
    let frame = (HEADER + payload(0).len()) as u64;
    let (b, _) = DiskBuffer::open_with(dir.path(), 3 * frame, 1 << 20).unwrap();
    let m = Mutex::new(b);
    let data: Vec<Vec<u8>> = (0..5).map(payload).collect();
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let r = m.lock().unwrap().append(&refs, false);
    assert_eq!((r.count, r.error.is_none()), (3, true));
    assert_eq!(m.lock().unwrap().append(&refs[3..], false).count, 0);
    let start = m.lock().unwrap().start();
    let frames = read(&m, start, 1).unwrap();
    m.lock().unwrap().ack(frames[0].seq, frames[0].end).unwrap();
    assert_eq!(m.lock().unwrap().append(&refs[3..], false).count, 1);
    // Shutdown forces the rest in: nothing is lost.
    assert_eq!(m.lock().unwrap().append(&refs[4..], true).count, 1);
    let start = m.lock().unwrap().start();
    assert_eq!(seqs(&read(&m, start, 10).unwrap()), vec![2, 3, 4, 5]);
    // A record bigger than the whole buffer still goes in once it is empty.
    let dir = tempfile::tempdir().unwrap();
    let (mut b, _) = DiskBuffer::open(dir.path(), 10).unwrap();
    assert_eq!(b.append(&[&payload(1)], false).count, 1);
    assert_eq!(b.append(&[&payload(2)], false).count, 0);
}

#[test]
fn numbers_are_never_reused_once_everything_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut b, _) = DiskBuffer::open_with(dir.path(), 1 << 30, 1 << 30).unwrap();
    // Past ROLL_ACKED, so the acknowledged segment is deleted.
    let n = ROLL_ACKED / (HEADER as u64 + payload(0).len() as u64) + 10;
    append_range(&mut b, 0..n);
    let (m, frames) = read_all(b);
    let last = frames.last().unwrap();
    m.lock().unwrap().ack(last.seq, last.end).unwrap();
    assert_eq!(m.lock().unwrap().unacked_bytes(), 0);
    assert!(segment_files(dir.path()).is_empty());
    drop(m);
    let (mut b, rec) = DiskBuffer::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(rec.records, 0);
    append_range(&mut b, 0..1);
    let (_, frames) = read_all(b);
    assert_eq!(seqs(&frames), vec![n + 1]);
}

#[test]
fn one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = DiskBuffer::open(dir.path(), 1 << 20).unwrap();
    let e = DiskBuffer::open(dir.path(), 1 << 20).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    drop(b);
    assert!(DiskBuffer::open(dir.path(), 1 << 20).is_ok());
}
