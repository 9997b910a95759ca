//! Paths and names that come from outside (file names in a watched folder, names inside
//! a checkpoint) on their way to JSON, to the history and to a terminal.
//!
//! On Linux a path is bytes, not text. camwatch keeps it as bytes end to end:
//! - in JSON, a path that is valid UTF-8 is a plain string; in one that is not, each
//!   byte that is not part of valid UTF-8 is written as a lone surrogate `\udc80` …
//!   `\udcff` (byte 0x80 … 0xff), Python's `surrogateescape`. So
//!   `os.fsencode(json.loads(line)["path"])` gives back the exact bytes;
//! - in the history, such a path is stored as a BLOB of its bytes (UTF-8 ones as TEXT);
//! - on a terminal, control characters (escape sequences that would retitle the
//!   terminal or move the cursor) are shown as `\x1b`-style escapes, never sent raw.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serializer;

/// The bytes of a path.
pub fn bytes(path: &Path) -> &[u8] {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes()
    }
    #[cfg(not(unix))]
    {
        path.as_os_str().as_encoded_bytes()
    }
}

/// A path from its bytes.
pub fn from_bytes(bytes: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(OsStr::from_bytes(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// The JSON string literal (quotes included) for `path`, by the rule above.
pub fn json_literal(path: &Path) -> String {
    let mut out = String::from("\"");
    for chunk in bytes(path).utf8_chunks() {
        let valid = serde_json::to_string(chunk.valid()).unwrap_or_default();
        out.push_str(valid.trim_matches('"'));
        for byte in chunk.invalid() {
            let _ = write!(out, "\\udc{byte:02x}");
        }
    }
    out.push('"');
    out
}

/// `#[serde(serialize_with = "crate::paths::serialize")]`: a path as [`json_literal`]
/// writes it. Only for JSON output.
pub fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    match path.to_str() {
        Some(text) => serializer.serialize_str(text),
        None => {
            let raw = serde_json::value::RawValue::from_string(json_literal(path))
                .map_err(serde::ser::Error::custom)?;
            serde::Serialize::serialize(&raw, serializer)
        }
    }
}

/// [`serialize`] for a list of paths.
pub fn serialize_all<S: Serializer>(paths: &[PathBuf], serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    struct One<'a>(&'a Path);
    impl serde::Serialize for One<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, serializer)
        }
    }
    let mut seq = serializer.serialize_seq(Some(paths.len()))?;
    for path in paths {
        seq.serialize_element(&One(path))?;
    }
    seq.end()
}

/// `text` safe to print on a terminal: control characters (C0, DEL, C1) as `\x..` /
/// `\u{..}` escapes, everything else as it is.
pub fn for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.push(' '),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_paths_are_plain_strings() {
        assert_eq!(
            json_literal(Path::new("a/b \"c\".pth")),
            r#""a/b \"c\".pth""#
        );
    }

    #[cfg(unix)]
    #[test]
    fn other_bytes_are_lone_surrogates() {
        let path = from_bytes(b"run\xff/\xc3(x\xe9.pth");
        assert_eq!(json_literal(&path), r#""run\udcff/\udcc3(x\udce9.pth""#);
        assert_eq!(bytes(&path), b"run\xff/\xc3(x\xe9.pth");
        #[derive(serde::Serialize)]
        struct Line {
            #[serde(serialize_with = "serialize")]
            path: PathBuf,
        }
        let line = serde_json::to_string(&Line { path }).unwrap();
        assert_eq!(line, r#"{"path":"run\udcff/\udcc3(x\udce9.pth"}"#);
    }

    #[test]
    fn control_characters_do_not_reach_the_terminal() {
        assert_eq!(
            for_terminal("a\x1b]0;owned\x07b\u{9b}c é"),
            "a\\x1b]0;owned\\x07b\\u{9b}c é"
        );
    }
}
