//! `model list --filter KEY=VALUE`: which entries a person asked to see.

use super::{CatalogEntry, CatalogError, EntryOrigin};

/// One `--filter KEY=VALUE`; VALUE may hold `*` and `?` wildcards, matched case-insensitively.
#[derive(Clone, Debug)]
pub struct Filter {
    key: FilterKey,
    pattern: glob::Pattern,
}

#[derive(Clone, Copy, Debug)]
enum FilterKey {
    Alias,
    Family,
    Tag,
    Device,
    Quant,
    License,
    Origin,
}

impl std::str::FromStr for Filter {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CatalogError::BadFilter(s.to_string());
        let (key, value) = s.split_once('=').ok_or_else(bad)?;
        let key = match key.trim().to_ascii_lowercase().as_str() {
            "alias" | "model" => FilterKey::Alias,
            "family" => FilterKey::Family,
            "tag" | "capability" | "task" => FilterKey::Tag,
            "device" => FilterKey::Device,
            "quant" | "quantization" => FilterKey::Quant,
            "license" | "licence" => FilterKey::License,
            "origin" => FilterKey::Origin,
            _ => return Err(bad()),
        };
        let pattern = glob::Pattern::new(&value.trim().to_ascii_lowercase()).map_err(|_| bad())?;
        Ok(Self { key, pattern })
    }
}

impl Filter {
    /// Whether `entry` passes this filter.
    pub fn matches(&self, entry: &CatalogEntry) -> bool {
        let hit = |v: &str| self.pattern.matches(&v.to_ascii_lowercase());
        match self.key {
            FilterKey::Alias => hit(&entry.alias),
            FilterKey::Family => entry.family.as_deref().is_some_and(hit),
            FilterKey::Tag => entry.capabilities.iter().any(|t| hit(t)),
            FilterKey::Device => hit(entry.device()),
            FilterKey::Quant => entry.quantization.as_deref().is_some_and(hit),
            FilterKey::License => entry.license.as_deref().is_some_and(hit),
            FilterKey::Origin => hit(match entry.origin {
                EntryOrigin::Builtin => "builtin",
                EntryOrigin::User => "user",
            }),
        }
    }
}
