//! TFRecord framing, as TensorFlow and TensorBoard read event files: each record is
//!
//! ```text
//! u64 length (little-endian) · u32 masked CRC-32C of those 8 bytes
//! data (length bytes)        · u32 masked CRC-32C of the data
//! ```
//!
//! The mask (rotate right by 15, add 0xa282ead8) is TensorFlow's, so that a CRC of
//! data holding CRCs stays strong.

const MASK_DELTA: u32 = 0xa282_ead8;

/// The largest record camwatch reads back (its own images are far smaller): a length
/// field from a foreign or torn file is not trusted further.
const MAX_RECORD: u64 = 64 << 20;

fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Appends `data` as one record to `out`.
pub fn frame(data: &[u8], out: &mut Vec<u8>) {
    let length = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// Reads records one at a time (a file of images can be gigabytes: it is never held
/// whole), up to the first that is cut or fails its CRC: a torn tail, or a foreign
/// file. `used` counts the bytes of the records read so far.
pub struct Reader<R> {
    input: R,
    pub used: u64,
}

impl<R: std::io::Read> Reader<R> {
    pub fn new(input: R) -> Reader<R> {
        Reader { input, used: 0 }
    }

    /// The next whole record, or `None` at the end or at the first bad one.
    pub fn next_record(&mut self) -> Option<Vec<u8>> {
        let mut header = [0u8; 12];
        self.input.read_exact(&mut header).ok()?;
        let (length, crc) = header.split_at(8);
        if masked_crc(length).to_le_bytes() != crc {
            return None;
        }
        let length = u64::from_le_bytes(length.try_into().ok()?);
        if length > MAX_RECORD {
            return None;
        }
        let mut data = vec![0u8; length as usize];
        self.input.read_exact(&mut data).ok()?;
        let mut crc = [0u8; 4];
        self.input.read_exact(&mut crc).ok()?;
        if masked_crc(&data).to_le_bytes() != crc {
            return None;
        }
        self.used += 12 + length + 4;
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensorflow_s_masked_crc() {
        // crc32c("") = 0; masked as TensorFlow's `MaskedCrc` does.
        assert_eq!(masked_crc(b""), MASK_DELTA);
        // crc32c("123456789") = 0xe3069283, TensorFlow's check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(
            masked_crc(b"123456789"),
            0xe306_9283u32.rotate_right(15).wrapping_add(MASK_DELTA)
        );
    }

    /// Every whole record of `bytes`, and the bytes they take.
    fn records(bytes: &[u8]) -> (Vec<Vec<u8>>, u64) {
        let mut reader = Reader::new(bytes);
        let records = std::iter::from_fn(|| reader.next_record()).collect();
        (records, reader.used)
    }

    #[test]
    fn records_read_back_up_to_a_torn_one() {
        let mut file = Vec::new();
        frame(b"first", &mut file);
        frame(b"", &mut file);
        frame(b"third record", &mut file);
        let whole = file.len() as u64;
        let (read, used) = records(&file);
        assert_eq!(read, [&b"first"[..], b"", b"third record"]);
        assert_eq!(used, whole);
        // Cut anywhere inside the last record: the first two stand.
        for cut in whole - 27..whole {
            let (read, used) = records(&file[..cut as usize]);
            assert_eq!(read.len(), 2, "cut at {cut}");
            assert_eq!(used, whole - 28);
        }
        // A flipped byte in the data stops reading there.
        file[12 + 2] ^= 1;
        assert_eq!(records(&file).0.len(), 0);
    }
}
