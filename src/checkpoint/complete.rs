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
        Ok(Format::Pdparams) => match pickle_end(data) {
            PickleEnd::Stop(end) => end == data.len(),
            PickleEnd::Broken => true,
            PickleEnd::Truncated => false,
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

/// Where a pickle's opcode stream ends.
#[derive(Debug, PartialEq, Eq)]
enum PickleEnd {
    /// Just after its STOP opcode.
    Stop(usize),
    /// The data runs out first.
    Truncated,
    /// An opcode no pickle protocol has.
    Broken,
}

/// Walks a pickle's opcodes, skipping their arguments, to its STOP: nothing is decoded
/// or built, so this costs a pass over the opcodes instead of a parse (for a protocol-2
/// file, whose arrays are UTF-8 text, a parse takes 10× longer). Whether the values
/// make sense is the parse's business, when the file is read.
fn pickle_end(data: &[u8]) -> PickleEnd {
    let mut pos = 0usize;
    // Advances past `n` bytes; `None` when the data runs out.
    let skip = |pos: &mut usize, n: u64| -> Option<()> {
        let end = u64::try_from(*pos).ok()?.checked_add(n)?;
        *pos = usize::try_from(end).ok().filter(|&e| e <= data.len())?;
        Some(())
    };
    let length = |pos: &mut usize, width: usize| -> Option<u64> {
        let bytes = data.get(*pos..*pos + width)?;
        *pos += width;
        let mut buf = [0u8; 8];
        buf[..width].copy_from_slice(bytes);
        Some(u64::from_le_bytes(buf))
    };
    let line = |pos: &mut usize| -> Option<()> {
        let end = data[*pos..].iter().position(|&b| b == b'\n')?;
        *pos += end + 1;
        Some(())
    };
    loop {
        let Some(&opcode) = data.get(pos) else {
            return PickleEnd::Truncated;
        };
        pos += 1;
        let walked = match opcode {
            b'.' => return PickleEnd::Stop(pos),
            // No argument.
            b'('
            | b'0'
            | b'1'
            | b'2'
            | b'N'
            | 0x88
            | 0x89
            | b'}'
            | b']'
            | b')'
            | 0x8f
            | b'd'
            | b'l'
            | 0x91
            | b't'
            | 0x85..=0x87
            | b'a'
            | b'e'
            | 0x90
            | b's'
            | b'u'
            | 0x94
            | b'R'
            | 0x81
            | 0x92
            | b'b'
            | b'Q'
            | 0x93
            | b'o'
            | 0x97
            | 0x98 => Some(()),
            // Fixed-size arguments.
            0x80 | b'K' | b'q' | b'h' | 0x82 => skip(&mut pos, 1),
            b'M' | 0x83 => skip(&mut pos, 2),
            b'J' | b'r' | b'j' | 0x84 => skip(&mut pos, 4),
            b'G' | 0x95 => skip(&mut pos, 8),
            // A length, then that many bytes.
            0x8a | 0x8c | b'C' | b'U' => length(&mut pos, 1).and_then(|n| skip(&mut pos, n)),
            // (BINSTRING's length is signed: a negative one is a broken pickle.)
            b'T' if data.get(pos + 3).is_some_and(|&b| b & 0x80 != 0) => {
                return PickleEnd::Broken;
            }
            0x8b | b'X' | b'B' | b'T' => length(&mut pos, 4).and_then(|n| skip(&mut pos, n)),
            0x8d | 0x8e | 0x96 => length(&mut pos, 8).and_then(|n| skip(&mut pos, n)),
            // Text lines.
            b'I' | b'L' | b'F' | b'S' | b'V' | b'P' | b'g' | b'p' => line(&mut pos),
            b'c' | b'i' => line(&mut pos).and_then(|()| line(&mut pos)),
            _ => return PickleEnd::Broken,
        };
        if walked.is_none() {
            return PickleEnd::Truncated;
        }
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

    /// `pickle.dumps(v, protocol=p)` for p = 0…5 of an OrderedDict holding every kind of
    /// value a checkpoint has (ints of each width, a float, text with a newline, bytes,
    /// a bytearray, sets, None, booleans).
    const EVERY_PROTOCOL: [&[u8]; 6] = [
        b"ccollections\x0aOrderedDict\x0ap0\x0a(tRp1\x0aVw\x0ap2\x0a(I1\x0aI-2\x0aI300\x0aI70000\x0aL1099511627776L\x0aF1.5\x0aNI01\x0aI00\x0atp3\x0asVs\x0ap4\x0aV\xe9\x5cu000ax\x0ap5\x0asVb\x0ap6\x0ac_codecs\x0aencode\x0ap7\x0a(V\x5cu0000\xff\x0ap8\x0aVlatin1\x0ap9\x0atp10\x0aRp11\x0asVl\x0ap12\x0a(lp13\x0ac__builtin__\x0abytearray\x0ap14\x0a(g7\x0a(Vab\x0ap15\x0ag9\x0atp16\x0aRp17\x0atp18\x0aRp19\x0aac__builtin__\x0afrozenset\x0ap20\x0a((lp21\x0atp22\x0aRp23\x0aac__builtin__\x0aset\x0ap24\x0a((lp25\x0atp26\x0aRp27\x0aas.",
        b"ccollections\x0aOrderedDict\x0aq\x00)Rq\x01(X\x01\x00\x00\x00wq\x02(K\x01J\xfe\xff\xff\xffM,\x01Jp\x11\x01\x00L1099511627776L\x0aG?\xf8\x00\x00\x00\x00\x00\x00NI01\x0aI00\x0atq\x03X\x01\x00\x00\x00sq\x04X\x04\x00\x00\x00\xc3\xa9\x0axq\x05X\x01\x00\x00\x00bq\x06c_codecs\x0aencode\x0aq\x07(X\x03\x00\x00\x00\x00\xc3\xbfq\x08X\x06\x00\x00\x00latin1q\x09tq\x0aRq\x0bX\x01\x00\x00\x00lq\x0c]q\x0d(c__builtin__\x0abytearray\x0aq\x0e(h\x07(X\x02\x00\x00\x00abq\x0fh\x09tq\x10Rq\x11tq\x12Rq\x13c__builtin__\x0afrozenset\x0aq\x14(]q\x15tq\x16Rq\x17c__builtin__\x0aset\x0aq\x18(]q\x19tq\x1aRq\x1beu.",
        b"\x80\x02ccollections\x0aOrderedDict\x0aq\x00)Rq\x01(X\x01\x00\x00\x00wq\x02(K\x01J\xfe\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01G?\xf8\x00\x00\x00\x00\x00\x00N\x88\x89tq\x03X\x01\x00\x00\x00sq\x04X\x04\x00\x00\x00\xc3\xa9\x0axq\x05X\x01\x00\x00\x00bq\x06c_codecs\x0aencode\x0aq\x07X\x03\x00\x00\x00\x00\xc3\xbfq\x08X\x06\x00\x00\x00latin1q\x09\x86q\x0aRq\x0bX\x01\x00\x00\x00lq\x0c]q\x0d(c__builtin__\x0abytearray\x0aq\x0eh\x07X\x02\x00\x00\x00abq\x0fh\x09\x86q\x10Rq\x11\x85q\x12Rq\x13c__builtin__\x0afrozenset\x0aq\x14]q\x15\x85q\x16Rq\x17c__builtin__\x0aset\x0aq\x18]q\x19\x85q\x1aRq\x1beu.",
        b"\x80\x03ccollections\x0aOrderedDict\x0aq\x00)Rq\x01(X\x01\x00\x00\x00wq\x02(K\x01J\xfe\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01G?\xf8\x00\x00\x00\x00\x00\x00N\x88\x89tq\x03X\x01\x00\x00\x00sq\x04X\x04\x00\x00\x00\xc3\xa9\x0axq\x05X\x01\x00\x00\x00bq\x06C\x02\x00\xffq\x07X\x01\x00\x00\x00lq\x08]q\x09(cbuiltins\x0abytearray\x0aq\x0aC\x02abq\x0b\x85q\x0cRq\x0dcbuiltins\x0afrozenset\x0aq\x0e]q\x0f\x85q\x10Rq\x11cbuiltins\x0aset\x0aq\x12]q\x13\x85q\x14Rq\x15eu.",
        b"\x80\x04\x95\x91\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94(\x8c\x01w\x94(K\x01J\xfe\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01G?\xf8\x00\x00\x00\x00\x00\x00N\x88\x89t\x94\x8c\x01s\x94\x8c\x04\xc3\xa9\x0ax\x94\x8c\x01b\x94C\x02\x00\xff\x94\x8c\x01l\x94]\x94(\x8c\x08builtins\x94\x8c\x09bytearray\x94\x93\x94C\x02ab\x94\x85\x94R\x94(\x91\x94\x8f\x94eu.",
        b"\x80\x05\x95{\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94(\x8c\x01w\x94(K\x01J\xfe\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01G?\xf8\x00\x00\x00\x00\x00\x00N\x88\x89t\x94\x8c\x01s\x94\x8c\x04\xc3\xa9\x0ax\x94\x8c\x01b\x94C\x02\x00\xff\x94\x8c\x01l\x94]\x94(\x96\x02\x00\x00\x00\x00\x00\x00\x00ab\x94(\x91\x94\x8f\x94eu.",
    ];

    #[test]
    fn every_protocol_is_walked_to_its_stop() {
        for (protocol, pickle) in EVERY_PROTOCOL.iter().enumerate() {
            assert_eq!(
                pickle_end(pickle),
                PickleEnd::Stop(pickle.len()),
                "protocol {protocol}"
            );
            for end in 0..pickle.len() {
                assert_eq!(
                    pickle_end(&pickle[..end]),
                    PickleEnd::Truncated,
                    "protocol {protocol}, prefix of {end}"
                );
            }
            // Bytes after the STOP: not a file camwatch reads whole.
            let longer = [*pickle, b"\0"].concat();
            assert_eq!(pickle_end(&longer), PickleEnd::Stop(pickle.len()));
            if protocol >= 2 {
                assert!(is_complete(pickle) && !is_complete(&longer));
            }
        }
        // An opcode no protocol has, and BINSTRING with a negative length: broken, so
        // "complete" (the parse reports them).
        assert_eq!(pickle_end(b"\x80\x02\xff"), PickleEnd::Broken);
        assert_eq!(pickle_end(b"\x80\x02T\xff\xff\xff\xff"), PickleEnd::Broken);
    }

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
