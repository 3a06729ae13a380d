//! The seed's paging: `start` (default 0) and `limit` (default 10) over a sorted list.

use crate::RegistryError;

/// The seed's default page size.
pub const DEFAULT_LIMIT: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub start: i64,
    pub limit: i64,
}

impl Default for Page {
    fn default() -> Self {
        Self { start: 0, limit: DEFAULT_LIMIT }
    }
}

impl Page {
    /// Parses the raw query values; absent or empty means the default, a non-number is a
    /// 400 as in the seed.
    pub fn parse(start: Option<&str>, limit: Option<&str>) -> Result<Self, RegistryError> {
        fn number(name: &str, raw: Option<&str>, default: i64) -> Result<i64, RegistryError> {
            match raw {
                None | Some("") => Ok(default),
                Some(raw) => raw.parse().map_err(|_| {
                    RegistryError::invalid(format!("{name} should be number, but got {:?}", crate::error::echo(raw)))
                }),
            }
        }
        Ok(Self { start: number("start", start, 0)?, limit: number("limit", limit, DEFAULT_LIMIT)? })
    }

    /// The index range of this page in a list of `total` items. Like the seed, a negative
    /// start or limit, or a start past the end, gives an empty page.
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        let total = total as i64;
        if self.start < 0 || self.limit < 0 || self.start >= total {
            return 0..0;
        }
        let end = self.start.saturating_add(self.limit).min(total);
        self.start as usize..end as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges() {
        let p = |s, l| Page { start: s, limit: l };
        assert_eq!(p(0, 10).range(3), 0..3);
        assert_eq!(p(2, 10).range(3), 2..3);
        assert_eq!(p(3, 10).range(3), 0..0);
        assert_eq!(p(-1, 10).range(3), 0..0);
        assert_eq!(p(0, -1).range(3), 0..0);
        assert_eq!(p(0, 0).range(3), 0..0);
        assert_eq!(p(1, i64::MAX).range(3), 1..3);
        assert_eq!(Page::parse(None, Some("")).unwrap(), Page::default());
        assert!(Page::parse(Some("x"), None).is_err());
        assert!(Page::parse(None, Some("1.5")).is_err());
    }
}
