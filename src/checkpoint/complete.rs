//! "Is this file complete yet?": `paddle.save` and `torch.save` write straight into the
//! final path, so a watcher sees files while they are being written. Each format has its
//! own end marker; a file without it is still growing (or was cut short).

use super::{Format, LoadError, detect, zip};

/// Whether `data` holds a whole file of its format: a pickle that reaches its STOP
/// opcode, a ZIP with its end-of-central-directory record, a safetensors file exactly
/// as long as its header promises. Garbage is "complete" (so that it gets read and
/// reported) once it is not a prefix of anything camwatch reads.
pub fn is_complete(data: &[u8]) -> bool {
    match detect(data) {
        // A pickle is incomplete only if the data ran out; one that is broken in any
        // other way is complete, so that it is read and its real error reported.
        Ok(Format::Pdparams) => match super::pickle::parse(data) {
            Ok((_, end)) => end == data.len(),
            Err(e) => !e.truncated,
        },
        Ok(Format::Torch) => zip::find_end_record(data).is_some(),
        Ok(Format::Safetensors) => {
            super::safetensors::expected_len(data).is_ok_and(|n| n == data.len())
        }
        // Too short to tell yet.
        Err(LoadError::Empty) => false,
        Err(_) => data.len() >= 9,
    }
}

/// What an incomplete file (per [`is_complete`]) lacks, for the error a person reads.
pub fn missing_end(data: &[u8]) -> String {
    match detect(data) {
        Ok(Format::Pdparams) => "the pickle never reaches its STOP opcode".into(),
        Ok(Format::Torch) => "the ZIP archive has no end-of-central-directory record".into(),
        Ok(Format::Safetensors) => match super::safetensors::expected_len(data) {
            Ok(n) => format!("{} bytes where its header promises {n}", data.len()),
            Err(e) => e.to_string(),
        },
        Err(LoadError::Empty) => "the file is empty".into(),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_incomplete() {
        // pickle.dumps({'a': 1}, protocol=4)
        let pickle = b"\x80\x04\x95\x0a\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.";
        assert!(is_complete(pickle));
        for end in 0..pickle.len() {
            assert!(!is_complete(&pickle[..end]), "prefix of {end}");
        }
        let mut safetensors = Vec::new();
        let header = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        safetensors.extend((header.len() as u64).to_le_bytes());
        safetensors.extend(header);
        safetensors.extend(1f32.to_le_bytes());
        assert!(is_complete(&safetensors));
        assert!(!is_complete(&safetensors[..safetensors.len() - 1]));
        assert!(!is_complete(b""));
        assert!(!is_complete(b"PK\x03\x04 no end record yet"));
        assert!(is_complete(b"this is not a checkpoint at all"));
    }
}
