//! One buffered record on disk: a 16-byte header (payload length, CRC-32 of
//! sequence number and payload, sequence number; little-endian) and the
//! payload. The CRC makes a torn or half-written frame detectable, so a
//! crash mid-append loses at most the frame being written.

/// Bytes before the payload.
pub(super) const HEADER: usize = 16;

/// Encodes a frame of `payload` with sequence number `seq` onto `out`.
pub(super) fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    // Payloads are audit records, far below 4 GiB (bounded by the largest
    // protocol message); a larger one is cut rather than corrupting the file.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let payload = payload.get(..len as usize).unwrap_or(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// What the start of a byte slice holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decoded<'a> {
    /// A whole, intact frame of `size` bytes.
    Frame {
        /// Its sequence number.
        seq: u64,
        /// Its payload.
        payload: &'a [u8],
        /// Header plus payload.
        size: usize,
    },
    /// The slice ends inside a frame of `size` bytes (it is still being
    /// written, or a crash cut it); `size` is `None` when even the header
    /// is cut.
    Incomplete {
        /// The whole frame's size, when the header is there.
        size: Option<usize>,
    },
    /// The bytes are not a frame (a torn write, or corruption).
    Corrupt,
}

/// Decodes the frame at the start of `buf`.
pub(super) fn decode(buf: &[u8]) -> Decoded<'_> {
    let Some(header) = buf.get(..HEADER) else {
        return Decoded::Incomplete { size: None };
    };
    let word = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(header.get(at..at + 4).unwrap_or(&[0; 4]));
        u32::from_le_bytes(b)
    };
    let len = word(0) as usize;
    let crc = word(4);
    let mut s = [0u8; 8];
    s.copy_from_slice(header.get(8..16).unwrap_or(&[0; 8]));
    let seq = u64::from_le_bytes(s);
    let size = HEADER + len;
    let Some(payload) = buf.get(HEADER..size) else {
        return Decoded::Incomplete { size: Some(size) };
    };
    if checksum(seq, payload) != crc {
        return Decoded::Corrupt;
    }
    Decoded::Frame { seq, payload, size }
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    !crc32_update(crc32_update(!0, &seq.to_le_bytes()), payload)
}

/// CRC-32 (IEEE 802.3, reflected), table-driven; one table built at compile time.
fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(!crc32_update(!0, b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let mut buf = Vec::new();
        encode(41, b"{\"a\":1}", &mut buf);
        encode(42, b"", &mut buf);
        let Decoded::Frame { seq, payload, size } = decode(&buf) else {
            panic!("first frame");
        };
        assert_eq!((seq, payload, size), (41, &b"{\"a\":1}"[..], HEADER + 7));
        assert_eq!(
            decode(&buf[size..]),
            Decoded::Frame {
                seq: 42,
                payload: b"",
                size: HEADER
            }
        );
        assert_eq!(decode(&buf[..5]), Decoded::Incomplete { size: None });
        assert_eq!(
            decode(&buf[..HEADER + 3]),
            Decoded::Incomplete {
                size: Some(HEADER + 7)
            }
        );
        let mut flipped = buf.clone();
        flipped[HEADER + 2] ^= 1;
        assert_eq!(decode(&flipped), Decoded::Corrupt);
        // A zero-filled tail (a crash after the size was extended) is no frame.
        assert_eq!(decode(&[0u8; 32]), Decoded::Corrupt);
    }
}
