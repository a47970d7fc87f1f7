//! Loading the catalog and templates: the built-in `vendors/` tree compiled into the
//! binary, then an optional directory of the same layout whose files replace or add to it.

use std::collections::BTreeMap;
use std::path::Path;

use provisor_domain::catalog::{Catalog, CatalogError};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_vendors.rs"));
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
}

/// The catalog and every vendor's template sources (`<vendor>/<template>` → source).
pub struct Vendors {
    pub catalog: Catalog,
    pub templates: BTreeMap<String, String>,
}

impl Vendors {
    /// The vendors built into this binary.
    pub fn builtin() -> Result<Self, LoadError> {
        Self::from_files(
            builtin::FILES
                .iter()
                .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
                .collect(),
        )
    }

    /// The built-in vendors, with the files of `dir` (same layout: `<vendor>/vendor.toml`,
    /// `<vendor>/templates/<name>`) replacing or adding to them.
    pub fn load(dir: Option<&Path>) -> Result<Self, LoadError> {
        let mut files: BTreeMap<String, String> = builtin::FILES
            .iter()
            .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
            .collect();
        if let Some(dir) = dir {
            read_tree(dir, dir, &mut files)?;
        }
        Self::from_files(files)
    }

    fn from_files(files: BTreeMap<String, String>) -> Result<Self, LoadError> {
        let catalogs = files.iter().filter(|(p, _)| p.ends_with("/vendor.toml"));
        let catalog = Catalog::parse(catalogs.map(|(p, s)| (p.as_str(), s.as_str())))?;
        let templates = files
            .iter()
            .filter_map(|(p, s)| {
                let (vendor, rest) = p.split_once('/')?;
                let name = rest.strip_prefix("templates/")?;
                Some((format!("{vendor}/{name}"), s.clone()))
            })
            .collect();
        Ok(Vendors { catalog, templates })
    }
}

fn read_tree(
    root: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, String>,
) -> Result<(), LoadError> {
    let err = |path: &Path, e: std::io::Error| LoadError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(|e| err(dir, e))? {
        let path = entry.map_err(|e| err(dir, e))?.path();
        if path.is_dir() {
            read_tree(root, &path, files)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e))?;
            files.insert(rel, text);
        }
    }
    Ok(())
}
