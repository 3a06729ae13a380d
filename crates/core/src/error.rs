//! The one error type every layer returns; only the HTTP layer turns it into a status.

/// What went wrong, in terms of the registry's resources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The request is malformed: a bad name, version, archive or body.
    #[error("{0}")]
    Invalid(String),
    /// The named resource (space, chart, version, ...) does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The named resource exists already and may not be overwritten.
    #[error("resource conflict because {0} exist")]
    AlreadyExists(String),
    /// Another writer holds the resource for longer than the configured lock timeout.
    #[error("{0} is locked and can't be handled")]
    Locked(String),
    /// A body or archive is over a configured size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The server failed (storage unavailable, corrupt record, ...).
    #[error("{0}")]
    Internal(String),
    /// The named thing does not exist; the message says which.
    #[error("{1}")]
    Missing(Thing, String),
    /// Bytes do not hash to the digest they were sent under.
    #[error("{0}")]
    DigestMismatch(String),
    /// A digest that is not `algorithm:hex` of a known algorithm.
    #[error("{0}")]
    InvalidDigest(String),
    /// A manifest that cannot be stored as it is.
    #[error("{0}")]
    InvalidManifest(String),
    /// A repository name that is not two valid names.
    #[error("{0}")]
    InvalidName(String),
    /// An upload's body could not be read.
    #[error("{0}")]
    InvalidUpload(String),
    /// A manifest names a blob that is not there.
    #[error("{0}")]
    MissingReference(String),
    /// One object has more bytes than its configured maximum (a blob, a manifest body, a
    /// config read to check it); `TooLarge` is a request body or archive over its limits.
    #[error("{0}")]
    OverMaximum(String),
    /// A byte range or chunk that does not fit the object or upload, or an upload another
    /// request is writing to.
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// Refused by policy: a tag owned by a chart version, a blob still in use, a version
    /// that is not overwritten.
    #[error("{0}")]
    Refused(String),
    /// Too many of something are open (upload sessions).
    #[error("{0}")]
    TooMany(String),
    /// A write would take a space past its quota; the message names the limit and the use.
    #[error("{0}")]
    OverQuota(String),
}

/// What a [`RegistryError::Missing`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thing {
    Space,
    Chart,
    Version,
    Blob,
    Manifest,
    Upload,
    Repository,
}

impl RegistryError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal(message.to_string())
    }
}

/// Characters of a user-supplied value shown in a message.
pub const ECHO_CHARS: usize = 128;

/// A user-supplied value shortened for a message: at most [`ECHO_CHARS`] characters,
/// then `…(N bytes)`. Formatting it costs the same whatever the value's length, so an
/// error about a 50 MiB path is as cheap and as short as one about a short path.
#[derive(Clone, Copy)]
pub struct Echo<'a> {
    shown: &'a str,
    total: usize,
}

/// Shortens a user-supplied value for display; see [`Echo`].
pub fn echo(value: &str) -> Echo<'_> {
    let end = value.char_indices().nth(ECHO_CHARS).map_or(value.len(), |(i, _)| i);
    Echo { shown: &value[..end], total: value.len() }
}

impl Echo<'_> {
    fn is_cut(&self) -> bool {
        self.shown.len() < self.total
    }
}

impl std::fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.shown)?;
        if self.is_cut() {
            write!(f, "…({} bytes)", self.total)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Echo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.shown, f)?;
        if self.is_cut() {
            write!(f, "…({} bytes)", self.total)?;
        }
        Ok(())
    }
}

/// Formats `value` into at most `max` bytes (cut on a character boundary, marked with
/// `…`). Formatting stops once the buffer is full, so a message built from a huge value
/// (a parser error quoting its input) costs no more than `max`.
pub fn bounded(value: &dyn std::fmt::Display, max: usize) -> String {
    struct Capped {
        text: String,
        max: usize,
        cut: bool,
    }
    impl std::fmt::Write for Capped {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = self.max - self.text.len();
            if s.len() <= room {
                self.text.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
            self.cut = true;
            Err(std::fmt::Error)
        }
    }
    let mut out = Capped { text: String::new(), max, cut: false };
    let _ = std::fmt::write(&mut out, format_args!("{value}"));
    if out.cut {
        out.text.push('…');
    }
    out.text
}

/// Shortens a message to at most `max` bytes (plus a `…` marker): the last-resort bound
/// on what an error answer can carry.
pub fn shorten(message: &mut String, max: usize) {
    if message.len() > max {
        let mut end = max;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_shows_short_values_whole_and_cuts_long_ones() {
        assert_eq!(format!("{:?}", echo("a/b")), "\"a/b\"");
        assert_eq!(echo("a/b").to_string(), "a/b");
        let long = "é".repeat(100_000);
        let shown = format!("{:?}", echo(&long));
        assert!(shown.ends_with("…(200000 bytes)"), "{shown}");
        assert!(shown.len() < 300, "{}", shown.len());
    }

    #[test]
    fn bounded_stops_formatting_at_the_cap() {
        let long = "x".repeat(1 << 20);
        let text = bounded(&format_args!("error: {long}"), 64);
        assert!(text.len() <= 64 + '…'.len_utf8(), "{}", text.len());
        assert!(text.starts_with("error: xxx") && text.ends_with('…'), "{text}");
        assert_eq!(bounded(&"short", 64), "short");
        let mut message = "é".repeat(10);
        shorten(&mut message, 5);
        assert_eq!(message, "éé…");
    }
}
