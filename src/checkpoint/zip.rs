//! The subset of ZIP that `torch.save` writes: stored (uncompressed) entries, with ZIP64
//! records for large files. Entries are borrowed from the file's bytes, not copied.

use super::LoadError;

const EOCD: u32 = 0x0605_4b50;
const ZIP64_EOCD: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;

pub struct Entry<'a> {
    pub name: String,
    pub data: &'a [u8],
}

fn bad(message: impl Into<String>) -> LoadError {
    LoadError::Zip(message.into())
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        d.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        d.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Where the end-of-central-directory record starts, if the file has one: a ZIP that is
/// still being written has none yet.
pub fn find_end_record(data: &[u8]) -> Option<usize> {
    if data.len() < 22 {
        return None;
    }
    let earliest = data.len().saturating_sub(22 + 65535);
    (earliest..=data.len() - 22).rev().find(|&at| {
        u32_at(data, at) == Some(EOCD)
            && u16_at(data, at + 20).is_some_and(|comment| at + 22 + comment as usize == data.len())
    })
}

/// Lists the entries of a ZIP archive.
pub fn entries(data: &[u8]) -> Result<Vec<Entry<'_>>, LoadError> {
    let eocd = find_end_record(data).ok_or_else(|| {
        bad("no end-of-central-directory record (truncated or still being written?)")
    })?;
    let short = || bad("central directory runs past the end of the file");
    let mut count = u16_at(data, eocd + 10).ok_or_else(short)? as u64;
    let mut dir_offset = u32_at(data, eocd + 16).ok_or_else(short)? as u64;
    if eocd >= 20 && u32_at(data, eocd - 20) == Some(ZIP64_LOCATOR) {
        let record = u64_at(data, eocd - 12).ok_or_else(short)? as usize;
        if u32_at(data, record) != Some(ZIP64_EOCD) {
            return Err(bad("ZIP64 locator points at no ZIP64 record"));
        }
        count = u64_at(data, record + 32).ok_or_else(short)?;
        dir_offset = u64_at(data, record + 48).ok_or_else(short)?;
    }
    let mut at = usize::try_from(dir_offset).map_err(|_| short())?;
    let mut out = Vec::new();
    for _ in 0..count {
        if u32_at(data, at) != Some(CENTRAL) {
            return Err(bad(format!("no central directory entry at byte {at}")));
        }
        let method = u16_at(data, at + 10).ok_or_else(short)?;
        let mut size = u32_at(data, at + 20).ok_or_else(short)? as u64;
        let name_len = u16_at(data, at + 28).ok_or_else(short)? as usize;
        let extra_len = u16_at(data, at + 30).ok_or_else(short)? as usize;
        let comment_len = u16_at(data, at + 32).ok_or_else(short)? as usize;
        let mut local = u32_at(data, at + 42).ok_or_else(short)? as u64;
        let name_bytes = data.get(at + 46..at + 46 + name_len).ok_or_else(short)?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        let extra = data
            .get(at + 46 + name_len..at + 46 + name_len + extra_len)
            .ok_or_else(short)?;
        // ZIP64 extended information: 64-bit values for the fields saturated at 0xFFFFFFFF,
        // in the order uncompressed size, compressed size, local header offset.
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e).unwrap_or(0);
            let len = u16_at(extra, e + 2).unwrap_or(0) as usize;
            if id == 1 {
                let mut f = e + 4;
                let mut next = || {
                    let v = u64_at(extra, f);
                    f += 8;
                    v
                };
                if size == u32::MAX as u64 {
                    size = next().ok_or_else(short)?;
                    let compressed = next().ok_or_else(short)?;
                    size = size.max(compressed);
                }
                if local == u32::MAX as u64 {
                    local = next().ok_or_else(short)?;
                }
            }
            e += 4 + len;
        }
        if method != 0 {
            return Err(bad(format!(
                "entry {name:?} is compressed (method {method}); torch.save writes stored entries"
            )));
        }
        let local = usize::try_from(local).map_err(|_| short())?;
        if u32_at(data, local) != Some(LOCAL) {
            return Err(bad(format!("no local header for {name:?}")));
        }
        let local_name = u16_at(data, local + 26).ok_or_else(short)? as usize;
        let local_extra = u16_at(data, local + 28).ok_or_else(short)? as usize;
        let start = local + 30 + local_name + local_extra;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .ok_or_else(short)?;
        let entry = data
            .get(start..end)
            .ok_or_else(|| bad(format!("entry {name:?} runs past the end of the file")))?;
        out.push(Entry { name, data: entry });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}
