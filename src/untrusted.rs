//! Reading files that somebody else controls: a watched folder on a shared machine holds
//! whatever other people and programs put there, and it can change between two looks.
//!
//! A file is opened once, without blocking (a FIFO would otherwise wait for a writer),
//! checked on that handle (a regular file; its size from the handle, not from an
//! earlier `stat` of the name, which a rename or a symlink swap makes stale), and read
//! up to that size and no further (`/dev/zero` never ends).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The largest checkpoint camwatch reads: Res2Net200_vd_26w_4s has 76 M parameters
/// (305 MB in fp32); a trainer's checkpoint with Adam's two moments and an EMA copy
/// stays well under this.
pub const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;

/// The largest sample image file camwatch reads.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Holes (ranges never written) beyond this, and beyond an eighth of the file, mark a
/// sparse file: no checkpoint writer leaves them, and reading one costs its full size
/// in memory although the disk holds nothing.
const MAX_HOLE_BYTES: u64 = 16 << 20;

fn refused(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Opens `path` for reading without blocking and checks that it is a regular file of
/// at most `max` bytes. Returns the handle and its size.
pub fn open_regular(path: &Path, max: u64) -> io::Result<(File, u64)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer;
        // O_NOCTTY: a terminal device never becomes ours.
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(refused(format!("not a regular file ({})", describe(kind))));
    }
    let size = meta.len();
    if size > max {
        return Err(refused(format!(
            "{} is larger than the {} camwatch reads",
            human_bytes(size),
            human_bytes(max)
        )));
    }
    let holes = hole_bytes(&file, size);
    if holes > MAX_HOLE_BYTES && holes > size / 8 {
        return Err(refused(format!(
            "a sparse file: {} of its {} were never written",
            human_bytes(holes),
            human_bytes(size)
        )));
    }
    Ok((file, size))
}

/// Reads the whole of a regular file of at most `max` bytes into `buffer` (cleared
/// first), never more than the size its handle reported when opened.
pub fn read_into(path: &Path, max: u64, buffer: &mut Vec<u8>) -> io::Result<()> {
    let (file, size) = open_regular(path, max)?;
    buffer.clear();
    buffer.try_reserve_exact(size as usize).map_err(|_| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("no memory for {}", human_bytes(size)),
        )
    })?;
    file.take(size).read_to_end(buffer)?;
    Ok(())
}

/// [`read_into`] a fresh buffer.
pub fn read(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut buffer = Vec::new();
    read_into(path, max, &mut buffer)?;
    Ok(buffer)
}

fn describe(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}

/// Bytes of `file` in holes, as `SEEK_DATA`/`SEEK_HOLE` report them (0 where the file
/// system cannot tell). Looks at the first few thousand extents only.
#[cfg(target_os = "linux")]
fn hole_bytes(file: &File, size: u64) -> u64 {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let (mut at, mut holes) = (0i64, 0u64);
    for _ in 0..4096 {
        if at as u64 >= size {
            break;
        }
        // SAFETY: lseek on a descriptor this function borrows; it only moves the offset,
        // which is put back below.
        let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: no data after `at`, the rest is a hole; anything else: no answer.
            if io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
                holes += size - at as u64;
            }
            break;
        }
        holes += (data - at) as u64;
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole <= data {
            break;
        }
        at = hole;
    }
    let _ = (&*file).seek(SeekFrom::Start(0));
    holes
}

#[cfg(not(target_os = "linux"))]
fn hole_bytes(_: &File, _: u64) -> u64 {
    0
}

/// `3.2 GB`, `512 MB`, `4 KB`: sizes in messages.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder for one test, removed when the guard drops.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(test: &str) -> Scratch {
            let dir = std::env::temp_dir()
                .join(format!("camwatch-untrusted-{test}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn reads_a_regular_file_and_refuses_the_rest() {
        let scratch = Scratch::new("plain");
        let file = scratch.0.join("plain");
        std::fs::write(&file, b"hello").unwrap();
        assert_eq!(read(&file, 100).unwrap(), b"hello");
        let too_big = read(&file, 4).unwrap_err().to_string();
        assert!(too_big.contains("larger than"), "{too_big}");
        let folder = read(file.parent().unwrap(), 100).unwrap_err().to_string();
        assert!(folder.contains("not a regular file"), "{folder}");
        let device = read(Path::new("/dev/zero"), 100).unwrap_err().to_string();
        assert!(device.contains("character device"), "{device}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let scratch = Scratch::new("fifo");
        let fifo = scratch.0.join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let error = read(&fifo, 100).unwrap_err().to_string();
        assert!(error.contains("FIFO"), "{error}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_sparse_file_is_refused() {
        let scratch = Scratch::new("sparse");
        let path = scratch.0.join("sparse");
        let file = File::create(&path).unwrap();
        file.set_len(64 << 20).unwrap();
        drop(file);
        // tmpfs and most disk file systems report holes; where one does not, the file
        // reads as zeros, which costs memory but no more.
        if hole_bytes(&File::open(&path).unwrap(), 64 << 20) > 0 {
            let error = read(&path, MAX_CHECKPOINT_BYTES).unwrap_err().to_string();
            assert!(error.contains("sparse"), "{error}");
        }
    }
}
