//! Helm provenance files (`.prov`): a PGP clear-signed document holding the chart's
//! Chart.yaml and the sha256 of its archive. The registry checks that a provenance file
//! belongs to the archive it is stored with; verifying the signature is the client's job
//! (`helm verify` with its keyring).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::RegistryError;
use crate::error::echo;
use crate::metadata::ChartMetadata;

/// What a provenance file claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub name: String,
    pub version: String,
    /// Archive file name → `sha256:<hex>`.
    pub files: BTreeMap<String, String>,
}

const BEGIN_MESSAGE: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::invalid(format!("provenance is invalid: {}", message.into()))
}

/// Reads the signed body of a provenance file.
pub fn parse(bytes: &[u8]) -> Result<Provenance, RegistryError> {
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text"))?;
    let text = text.replace("\r\n", "\n");
    let start = text.find(BEGIN_MESSAGE).ok_or_else(|| invalid("no PGP signed message"))?;
    let after = &text[start + BEGIN_MESSAGE.len()..];
    // Armor headers ("Hash: SHA512") end at the first empty line.
    let body_start = after.find("\n\n").ok_or_else(|| invalid("no message body"))? + 2;
    let body = &after[body_start..];
    let end = body.find(BEGIN_SIGNATURE).ok_or_else(|| invalid("no PGP signature"))?;
    // Clear-signing escapes lines starting with '-' as "- -".
    let body: String = body[..end].lines().map(|l| l.strip_prefix("- ").unwrap_or(l)).collect::<Vec<_>>().join("\n");
    let (chart_part, files_part) = body.split_once("\n...\n").ok_or_else(|| invalid("no files section"))?;
    let metadata: ChartMetadata = crate::yaml::from_yaml(chart_part.as_bytes(), "provenance Chart.yaml")?;
    #[derive(Deserialize)]
    struct Files {
        files: BTreeMap<String, String>,
    }
    let files: Files = crate::yaml::from_yaml(files_part.as_bytes(), "provenance files")?;
    Ok(Provenance { name: metadata.name, version: metadata.version, files: files.files })
}

impl Provenance {
    /// Checks that this provenance names the chart version and the archive's digest.
    pub fn check(&self, name: &str, version: &str, digest: &str) -> Result<(), RegistryError> {
        if self.name != name || self.version != version {
            return Err(invalid(format!(
                "it is for {}-{}, not {}-{}",
                echo(&self.name),
                echo(&self.version),
                echo(name),
                echo(version)
            )));
        }
        let file = format!("{name}-{version}.tgz");
        match self.files.get(&file) {
            Some(sum) if sum.strip_prefix("sha256:") == Some(digest) => Ok(()),
            Some(sum) => {
                Err(invalid(format!("{} has {}, but the archive's sha256 is {digest}", echo(&file), echo(sum))))
            }
            None => Err(invalid(format!("it has no checksum for {}", echo(&file)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROV: &str = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\napiVersion: v2\nname: demo\nversion: 1.0.0\n\n...\nfiles:\n  demo-1.0.0.tgz: sha256:abc\n-----BEGIN PGP SIGNATURE-----\n\nwsBc\n-----END PGP SIGNATURE-----\n";

    #[test]
    fn parses_and_checks() {
        let prov = parse(PROV.as_bytes()).unwrap();
        assert_eq!((prov.name.as_str(), prov.version.as_str()), ("demo", "1.0.0"));
        assert!(prov.check("demo", "1.0.0", "abc").is_ok());
        assert!(prov.check("demo", "1.0.0", "abd").is_err());
        assert!(prov.check("other", "1.0.0", "abc").is_err());
        assert!(parse(b"not a prov").is_err());
    }
}
