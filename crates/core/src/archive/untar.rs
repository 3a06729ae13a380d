//! A tar reader that sees exactly the entries Go's `archive/tar` reader (and so Helm)
//! sees, and refuses every header where the two could disagree.
//!
//! The `tar` crate is lenient where Go is strict and the other way round (it reads a
//! directory's `size` as data that Go reads as headers, stops a GNU long name at its last
//! byte where Go stops at the first NUL, takes the first of two pax `path` records where
//! Go takes the last, and skips malformed pax records where Go fails). A registry that
//! validates one chart while Helm installs another is worse than one that refuses the
//! archive, so this reader follows Go's rules and refuses, rather than guesses, wherever
//! an archive is ambiguous:
//!
//! - header checksums (signed or unsigned sums, as Go) and every numeric field must parse;
//! - pax records follow Go's `parsePAXRecord` (length, space, `=`, final newline), keys
//!   are UTF-8 and appear once, `path`/`linkpath` hold no NUL, sizes and times parse;
//!   GNU sparse records are refused;
//! - a GNU long name or link name is cut at its first NUL (as Go does); anything but NUL
//!   after it is refused;
//! - extension headers (pax, GNU long names) must describe a following entry, once each;
//! - entries Go reads without data (directories, links, devices) must have size 0; a
//!   regular entry whose mode says directory (Go's `FileInfo().IsDir()`, which Helm uses
//!   to skip entries) is refused;
//! - the archive ends at a zero block followed by a zero block or the end of the stream,
//!   and a zero block followed by a header is refused (Go's `ErrHeader`).

use std::io::{self, Read};

use crate::RegistryError;
use crate::error::echo;

use super::invalid;

const BLOCK: usize = 512;
/// Go's `maxSpecialFileSize`: the largest pax header or GNU long name it reads.
pub(crate) const MAX_SPECIAL_FILE_BYTES: u64 = 1024 * 1024;

/// What an entry is, as far as a chart is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file: its data is part of the chart.
    File,
    /// A directory or a pax global header: Helm skips it.
    Skip,
}

/// One entry's header, with pax and GNU extensions applied.
#[derive(Debug)]
pub(crate) struct Header {
    /// The entry's path as Go's reader reports it (UTF-8, no NUL).
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    pub mtime: u64,
}

/// Reads tar entries from a decompressed stream.
pub(crate) struct TarReader<R> {
    inner: R,
    /// Data bytes of the current entry not read yet, and the padding after them.
    remaining: u64,
    padding: u64,
    /// Headers still allowed (extension headers count too), and the limit they come from.
    headers_left: usize,
    max_headers: usize,
    done: bool,
}

/// Extension headers seen before the entry they describe.
#[derive(Default)]
struct Pending {
    pax: Option<Vec<(String, Vec<u8>)>>,
    long_name: Option<String>,
    long_link: Option<String>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.pax.is_none() && self.long_name.is_none() && self.long_link.is_none()
    }
}

fn malformed(message: impl std::fmt::Display) -> RegistryError {
    invalid(format!("not a valid tar archive: {message}"))
}

fn read_error(e: io::Error) -> RegistryError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => invalid("not a gzipped tar archive: unexpected end of file"),
        _ => invalid(format!("not a gzipped tar archive: {e}")),
    }
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R, headers_left: usize, max_headers: usize) -> Self {
        Self { inner, remaining: 0, padding: 0, headers_left, max_headers, done: false }
    }

    /// The stream after the archive's end, to check what follows.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Headers still allowed.
    pub fn headers_left(&self) -> usize {
        self.headers_left
    }

    /// The next entry, `None` at the end of the archive. Data of the previous entry that
    /// was not read is skipped.
    pub fn next_entry(&mut self) -> Result<Option<Header>, RegistryError> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut pending = Pending::default();
        loop {
            let Some(block) = self.read_header_block()? else {
                if !pending.is_empty() {
                    return Err(malformed("the archive ends after an extension header"));
                }
                self.done = true;
                return Ok(None);
            };
            if self.headers_left == 0 {
                return Err(invalid(format!("more than {} entries", self.max_headers)));
            }
            self.headers_left -= 1;
            let raw = RawHeader::parse(&block)?;
            match raw.typeflag {
                b'x' => {
                    if pending.pax.is_some() {
                        return Err(malformed("two pax headers describe one entry"));
                    }
                    let data = self.special_data(raw.size, "pax header")?;
                    pending.pax = Some(parse_pax(&data)?);
                }
                b'g' => {
                    if !pending.is_empty() {
                        return Err(malformed("an extension header is followed by a pax global header"));
                    }
                    let data = self.special_data(raw.size, "pax global header")?;
                    parse_pax(&data)?;
                    return Ok(Some(Header { path: String::new(), kind: Kind::Skip, size: 0, mode: 0, mtime: 0 }));
                }
                b'L' | b'K' => {
                    let what = if raw.typeflag == b'L' { "GNU long name" } else { "GNU long link name" };
                    let slot = if raw.typeflag == b'L' { &mut pending.long_name } else { &mut pending.long_link };
                    if slot.is_some() {
                        return Err(malformed(format!("two {what} headers describe one entry")));
                    }
                    let data = self.special_data(raw.size, what)?;
                    *slot = Some(long_name(&data, what)?);
                }
                _ => return self.entry(raw, pending).map(Some),
            }
        }
    }

    /// Reads the current entry's data; `limit` bounds what may be read.
    pub fn read_data(&mut self, limit: u64) -> Result<Vec<u8>, RegistryError> {
        if self.remaining > limit {
            return Err(invalid(format!("an entry is larger than {limit} bytes")));
        }
        let mut data = vec![0; self.remaining as usize];
        self.inner.read_exact(&mut data).map_err(read_error)?;
        self.remaining = 0;
        Ok(data)
    }

    fn entry(&mut self, raw: RawHeader, pending: Pending) -> Result<Header, RegistryError> {
        let mut path = raw.name;
        let mut size = raw.size;
        if let Some(records) = &pending.pax {
            for (key, value) in records {
                // As Go's mergePAX: an empty value keeps the header's own field.
                if value.is_empty() {
                    continue;
                }
                let text = || std::str::from_utf8(value).map_err(|_| malformed(format!("pax {key} is not UTF-8")));
                match key.as_str() {
                    "path" => path = text()?.to_string(),
                    "linkpath" => {
                        text()?;
                    }
                    "size" => size = parse_decimal(text()?).ok_or_else(|| malformed("pax size is not a size"))?,
                    "uid" | "gid" => {
                        text()?.parse::<i64>().map_err(|_| malformed(format!("pax {key} is not a number")))?;
                    }
                    "mtime" | "atime" | "ctime" if !is_pax_time(text()?) => {
                        return Err(malformed(format!("pax {key} is not a time")));
                    }
                    _ => {}
                }
            }
        }
        if let Some(name) = pending.long_name {
            path = name;
        }
        let shown = echo(&path);
        let header_only = |what: &str| -> Result<(), RegistryError> {
            // Go reads no data for these whatever the size says; the `tar` crate skips
            // `size` bytes. Both agree only on zero.
            if size != 0 { Err(malformed(format!("{shown:?} is a {what} with a size"))) } else { Ok(()) }
        };
        let kind = match raw.typeflag {
            b'0' | b'7' => Kind::File,
            // Go reads an old-style ('\0') entry named with a trailing '/' as a directory.
            0 if path.ends_with('/') => {
                header_only("directory")?;
                Kind::Skip
            }
            0 => Kind::File,
            b'5' => {
                header_only("directory")?;
                Kind::Skip
            }
            b'1' | b'2' => {
                return Err(invalid(format!("{shown:?} is a link; charts may only hold regular files")));
            }
            b'3' => return Err(invalid(format!("{shown:?} is a Char entry; charts may only hold regular files"))),
            b'4' => return Err(invalid(format!("{shown:?} is a Block entry; charts may only hold regular files"))),
            b'6' => return Err(invalid(format!("{shown:?} is a Fifo entry; charts may only hold regular files"))),
            other => {
                return Err(invalid(format!(
                    "{shown:?} is an entry of type {:?}; charts may only hold regular files",
                    other as char
                )));
            }
        };
        if kind == Kind::File {
            // Helm skips entries whose mode says directory (`FileInfo().IsDir()`), and reads
            // other special modes as files: only a plain regular mode is unambiguous.
            match raw.mode & 0o170000 {
                0 | 0o100000 => {}
                _ => return Err(malformed(format!("{shown:?} is a regular entry with a special mode"))),
            }
        }
        self.remaining = size;
        self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        Ok(Header { path, kind, size, mode: (raw.mode & 0o7777) as u32, mtime: raw.mtime.max(0) as u64 })
    }

    /// Reads one 512-byte header block; `None` at the end of the archive.
    fn read_header_block(&mut self) -> Result<Option<[u8; BLOCK]>, RegistryError> {
        let mut block = [0u8; BLOCK];
        if !self.read_block(&mut block)? {
            return Ok(None);
        }
        if block.iter().all(|b| *b == 0) {
            if !self.read_block(&mut block)? || block.iter().all(|b| *b == 0) {
                return Ok(None);
            }
            return Err(malformed("a zero block is followed by a header"));
        }
        Ok(Some(block))
    }

    /// Fills a block; `false` when the stream ends exactly before it.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool, RegistryError> {
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(read_error(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(e)),
            }
        }
        Ok(true)
    }

    /// The data of a pax header or GNU long name, at most Go's 1 MiB.
    fn special_data(&mut self, size: u64, what: &str) -> Result<Vec<u8>, RegistryError> {
        if size > MAX_SPECIAL_FILE_BYTES {
            return Err(malformed(format!("a {what} is larger than {MAX_SPECIAL_FILE_BYTES} bytes")));
        }
        self.remaining = size;
        self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        let data = self.read_data(MAX_SPECIAL_FILE_BYTES)?;
        self.skip_rest()?;
        Ok(data)
    }

    /// Skips what is left of the current entry and its padding.
    fn skip_rest(&mut self) -> Result<(), RegistryError> {
        let skip = self.remaining + self.padding;
        if skip > 0 {
            let copied = io::copy(&mut (&mut self.inner).take(skip), &mut io::sink()).map_err(read_error)?;
            if copied < skip {
                return Err(read_error(io::ErrorKind::UnexpectedEof.into()));
            }
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }
}

/// The fields of one header block, before extensions.
struct RawHeader {
    typeflag: u8,
    name: String,
    size: u64,
    mode: i64,
    mtime: i64,
}

impl RawHeader {
    fn parse(block: &[u8; BLOCK]) -> Result<Self, RegistryError> {
        let stored = parse_octal(&block[148..156]).ok_or_else(|| malformed("a header checksum is not a number"))?;
        let unsigned: i64 =
            block.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { *b as i64 }).sum();
        let signed: i64 =
            block.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { *b as i8 as i64 }).sum();
        if stored != unsigned && stored != signed {
            return Err(malformed("header checksum mismatch"));
        }
        let magic = &block[257..263];
        let format = match magic {
            b"ustar\0" if &block[508..512] == b"tar\0" => Format::Star,
            b"ustar\0" => Format::Ustar,
            b"ustar " if &block[263..265] == b" \0" => Format::Gnu,
            _ => Format::V7,
        };
        let number = |range: std::ops::Range<usize>, what: &str| {
            parse_numeric(&block[range]).ok_or_else(|| malformed(format!("a header's {what} is not a number")))
        };
        let size = number(124..136, "size")?;
        if size < 0 {
            return Err(malformed("a header's size is negative"));
        }
        let mode = number(100..108, "mode")?;
        number(108..116, "uid")?;
        number(116..124, "gid")?;
        let mtime = number(136..148, "mtime")?;
        let mut name = field(&block[0..100], "name")?;
        if format != Format::V7 {
            number(329..337, "device major")?;
            number(337..345, "device minor")?;
        }
        let prefix = match format {
            Format::Ustar => field(&block[345..500], "prefix")?,
            Format::Star => field(&block[345..476], "prefix")?,
            Format::Gnu => {
                // Go falls back to reading these bytes as a USTAR prefix when they do not
                // parse as times; refuse that ambiguity instead.
                for (range, what) in [(345..357, "access time"), (357..369, "change time")] {
                    if block[range.start] != 0 {
                        number(range, what)?;
                    }
                }
                String::new()
            }
            Format::V7 => String::new(),
        };
        if !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        Ok(Self { typeflag: block[156], name, size: size as u64, mode, mtime })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    V7,
    Ustar,
    Star,
    Gnu,
}

/// A NUL-terminated header string (Go's `parseString`), which must be UTF-8.
fn field(bytes: &[u8], what: &str) -> Result<String, RegistryError> {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8(bytes[..end].to_vec()).map_err(|_| malformed(format!("a header's {what} is not UTF-8")))
}

/// A GNU long name: Go cuts it at the first NUL; anything but NUL after that is refused.
fn long_name(data: &[u8], what: &str) -> Result<String, RegistryError> {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    if data[end..].iter().any(|b| *b != 0) {
        let shown = String::from_utf8_lossy(&data[..end.min(256)]).into_owned();
        return Err(invalid(format!("a {what} contains a NUL byte: {:?}", echo(&shown))));
    }
    if end == 0 {
        return Err(malformed(format!("a {what} is empty")));
    }
    String::from_utf8(data[..end].to_vec()).map_err(|_| invalid(format!("a {what} is not UTF-8")))
}

/// Go's `parseNumeric`: base-256 when the high bit is set, else octal padded with spaces
/// and NULs. Stricter than Go: octal digits only between the padding.
fn parse_numeric(bytes: &[u8]) -> Option<i64> {
    if let Some(first) = bytes.first()
        && first & 0x80 != 0
    {
        let inv = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, byte) in bytes.iter().enumerate() {
            let mut c = byte ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 > 0 {
                return None;
            }
            x = x << 8 | c as u64;
        }
        if x >> 63 > 0 {
            return None;
        }
        return Some(if inv == 0xff { !(x as i64) } else { x as i64 });
    }
    parse_octal(bytes)
}

fn parse_octal(bytes: &[u8]) -> Option<i64> {
    let is_pad = |b: &u8| *b == b' ' || *b == 0;
    let start = bytes.iter().position(|b| !is_pad(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_pad(b)).map_or(start, |i| i + 1);
    let digits = &bytes[start..end];
    if digits.is_empty() {
        return Some(0);
    }
    if !digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    i64::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok()
}

/// A non-negative decimal (a pax `size`).
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().map(|n| n as u64)
}

/// Go's `parsePAXTime`: `[-+]seconds[.fraction]`.
fn is_pax_time(text: &str) -> bool {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    seconds.parse::<i64>().is_ok() && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// Go's `parsePAX`/`parsePAXRecord`: `"%d %s=%s\n"` records, each as long as its decimal
/// length says. Stricter than Go: keys are UTF-8, each key appears once, and GNU sparse
/// records (which change how Go reads the data) are refused.
fn parse_pax(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, RegistryError> {
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').ok_or_else(|| malformed("a pax record has no length"))?;
        let length = std::str::from_utf8(&rest[..space])
            .ok()
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<usize>().ok())
            .ok_or_else(|| malformed("a pax record's length is not a number"))?;
        if length < 5 || length > rest.len() || length <= space + 1 {
            return Err(malformed("a pax record's length does not match the record"));
        }
        let record = &rest[space + 1..length];
        let Some((&b'\n', record)) = record.split_last() else {
            return Err(malformed("a pax record's length does not match the record"));
        };
        let equals = record.iter().position(|b| *b == b'=').ok_or_else(|| malformed("a pax record has no '='"))?;
        let (key, value) = (&record[..equals], &record[equals + 1..]);
        let key = std::str::from_utf8(key).map_err(|_| malformed("a pax record's key is not UTF-8"))?;
        if key.is_empty() || key.contains('\0') {
            return Err(malformed("a pax record has an empty key or a key with a NUL byte"));
        }
        if matches!(key, "path" | "linkpath" | "uname" | "gname") && value.contains(&0) {
            let shown = String::from_utf8_lossy(&value[..value.len().min(256)]).into_owned();
            return Err(invalid(format!("pax {key} contains a NUL byte: {:?}", echo(&shown))));
        }
        if key.starts_with("GNU.sparse.") {
            return Err(malformed("GNU sparse files are not supported"));
        }
        if records.iter().any(|(k, _)| k == key) {
            return Err(malformed(format!("pax record {:?} appears twice", echo(key))));
        }
        records.push((key.to_string(), value.to_vec()));
        rest = &rest[length..];
    }
    Ok(records)
}
