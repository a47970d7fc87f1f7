//! MAC addresses: accepted in every common spelling, stored and compared in one.

use std::fmt;
use std::str::FromStr;

use crate::Invalid;

/// A 48-bit hardware address. Its canonical text is twelve lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 6]);

impl Mac {
    /// Parses `00:15:65:AA:BB:CC`, `00-15-65-aa-bb-cc`, `001565aabbcc` and `0015.65aa.bbcc`
    /// (any case). Separators must be consistent and in the places their style puts them.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let s = input.trim();
        let digits: String = match s.len() {
            12 => s.to_owned(),
            17 => {
                let sep = s.as_bytes()[2];
                if sep != b':' && sep != b'-' {
                    return Err(bad(input));
                }
                let groups: Vec<&str> = s.split(sep as char).collect();
                if groups.len() != 6 || groups.iter().any(|g| g.len() != 2) {
                    return Err(bad(input));
                }
                groups.concat()
            }
            14 => {
                let groups: Vec<&str> = s.split('.').collect();
                if groups.len() != 3 || groups.iter().any(|g| g.len() != 4) {
                    return Err(bad(input));
                }
                groups.concat()
            }
            _ => return Err(bad(input)),
        };
        let mut bytes = [0u8; 6];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| bad(input))?;
        Ok(Mac(bytes))
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Twelve hex digits in upper case, as some vendors name their files.
    pub fn to_upper(&self) -> String {
        self.to_string().to_ascii_uppercase()
    }
}

fn bad(input: &str) -> Invalid {
    let shown: String = input.chars().take(40).collect();
    Invalid::new(
        "mac",
        format!("'{shown}' is not a MAC address (expected e.g. 00:15:65:aa:bb:cc or 001565aabbcc)"),
    )
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

impl FromStr for Mac {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Mac::parse(s)
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Mac::parse(&s).map_err(|e| serde::de::Error::custom(e.reason))
    }
}

impl utoipa::PartialSchema for Mac {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "MAC address; accepted as 00:15:65:aa:bb:cc, 00-15-65-AA-BB-CC, 001565aabbcc or 0015.65aa.bbcc, returned as 001565aabbcc",
            ))
            .examples(["001565aabbcc"])
            .into()
    }
}

impl utoipa::ToSchema for Mac {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_common_form() {
        for s in [
            "00:15:65:AA:BB:CC",
            "00-15-65-aa-bb-cc",
            "001565aabbcc",
            "001565AABBCC",
            "0015.65aa.bbcc",
            " 00:15:65:aa:bb:cc ",
        ] {
            assert_eq!(Mac::parse(s).unwrap().to_string(), "001565aabbcc", "{s}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for s in [
            "",
            "00:15:65:AA:BB",
            "00:15:65:AA:BB:CC:DD",
            "00:15-65:AA:BB:CC",
            "0015:65aa:bbcc",
            "00155.5aa.bbcc",
            "00156gaabbcc",
            "0:015:65:AA:BB:CC",
            "00:15:65:AA:BB:CÇ",
        ] {
            let e = Mac::parse(s).unwrap_err();
            assert_eq!(e.field, "mac", "{s}");
        }
    }

    #[test]
    fn upper_case_form() {
        assert_eq!(
            Mac::parse("001565aabbcc").unwrap().to_upper(),
            "001565AABBCC"
        );
    }
}
