//! innovaphone's wire rules: the AppWebsocket login digest and session key, the
//! RC4-over-hex encryption both AppWebsocket and sysclient use, and the sysclient binary
//! framing. No I/O; the exact formats and their test vectors are in the reference
//! (`protocols.md` §A and §B).
//!
//! RC4 is written here by hand (a dozen lines): innovaphone's keys are
//! `"<seed>:<secret>"` of any length, and RustCrypto's `rc4` crate fixes the key length in
//! the type. It is a legacy cipher kept for interoperability only: nothing of ours is
//! protected by it alone (TLS carries the connections).

use rand::Rng as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::secret::SecretString;

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether a digest a peer sent (hex, either case) is `expected`, in constant time.
pub fn digest_matches(expected: &str, sent: &str) -> bool {
    let sent = sent.to_ascii_lowercase();
    expected.len() == sent.len() && bool::from(expected.as_bytes().ct_eq(sent.as_bytes()))
}

/// A fresh AppWebsocket or sysclient challenge: 16 decimal digits, as innovaphone's own
/// implementations make them.
pub fn challenge() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..16)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// The fields of an `AppLogin` that its digest covers.
#[derive(Debug, Default)]
pub struct LoginFields<'a> {
    pub app: &'a str,
    pub domain: &'a str,
    pub sip: &'a str,
    pub guid: &'a str,
    pub dn: &'a str,
    /// The `info` object's JSON exactly as it was received, if there was one.
    pub info: Option<&'a str>,
}

/// The `AppLogin` digest: lowercase hex SHA-256 of
/// `app:domain:sip:guid:dn[:info]:challenge:password` (§A.1; `pbxObj` is not covered).
pub fn login_digest(f: &LoginFields<'_>, challenge: &str, password: &str) -> String {
    let mut text = format!("{}:{}:{}:{}:{}:", f.app, f.domain, f.sip, f.guid, f.dn);
    if let Some(info) = f.info {
        text.push_str(info);
        text.push(':');
    }
    text.push_str(challenge);
    text.push(':');
    text.push_str(password);
    sha256_hex(&text)
}

/// The session key of a connection (§A.2): 64 lowercase hex digits, used as text.
pub fn session_key(challenge: &str, password: &str) -> SecretString {
    SecretString::new(sha256_hex(&format!(
        "innovaphoneAppSessionKey:{challenge}:{password}"
    )))
}

/// Plain RC4 (no keystream drop). `key` is never empty where innovaphone uses it (it
/// holds a `:`); an empty key is taken as one zero byte rather than a panic.
pub fn rc4(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key: &[u8] = if key.is_empty() { &[0] } else { key };
    let mut s: [u8; 256] = std::array::from_fn(|i| i as u8);
    let mut j = 0u8;
    for i in 0..256 {
        j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
        s.swap(i, usize::from(j));
    }
    let (mut i, mut j) = (0u8, 0u8);
    data.iter()
        .map(|byte| {
            i = i.wrapping_add(1);
            j = j.wrapping_add(s[usize::from(i)]);
            s.swap(usize::from(i), usize::from(j));
            byte ^ s[usize::from(s[usize::from(i)].wrapping_add(s[usize::from(j)]))]
        })
        .collect()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptError {
    #[error("the ciphertext is not hex")]
    NotHex,
    #[error("the ciphertext does not decrypt to UTF-8 text")]
    NotText,
}

/// `hex(RC4(utf8(seed ":" secret), utf8(plain)))`: AppWebsocketEncrypt with the session
/// key as `secret`, and the sysclient admin password with the sysclient password.
pub fn encrypt(seed: &str, secret: &str, plain: &str) -> String {
    hex::encode(rc4(format!("{seed}:{secret}").as_bytes(), plain.as_bytes()))
}

/// The inverse of `encrypt`; hex of either case is read, and the result must be UTF-8.
pub fn decrypt(seed: &str, secret: &str, cipher_hex: &str) -> Result<SecretString, CryptError> {
    let bytes = hex::decode(cipher_hex).map_err(|_| CryptError::NotHex)?;
    let plain = rc4(format!("{seed}:{secret}").as_bytes(), &bytes);
    String::from_utf8(plain)
        .map(SecretString::new)
        .map_err(|_| CryptError::NotText)
}

/// AppWebsocketHash: `hex(SHA256(seed ":" sessionKey ":" data))`.
pub fn hash(seed: &str, session_key: &str, data: &str) -> String {
    sha256_hex(&format!("{seed}:{session_key}:{data}"))
}

/// The digest a sysclient answers a challenge with (§B.2):
/// `hex(SHA256(id:product:version:challenge:password))`.
pub fn sysclient_digest(
    id: &str,
    product: &str,
    version: &str,
    challenge: &str,
    password: &str,
) -> String {
    sha256_hex(&format!("{id}:{product}:{version}:{challenge}:{password}"))
}

/// A sysclient's password, given when it joins a domain: 32 letters and digits.
pub fn sysclient_password() -> SecretString {
    crate::phone::random_password(32)
}

/// A seed for an encrypted value: 16 decimal digits.
pub fn seed() -> String {
    challenge()
}

/// Sysclient admin message types (the two bytes after the frame type 0x01).
pub mod admin {
    pub const IDENTIFY: u16 = 0x0000;
    pub const PASSWORD: u16 = 0x0001;
    pub const CHALLENGE: u16 = 0x0002;
    pub const ADMIN_PASSWORD: u16 = 0x0003;
    pub const PROVISION: u16 = 0x0004;
    pub const PROVISION_RESULT: u16 = 0x0005;
    pub const CONFIGURATION: u16 = 0x0006;
}

const ADMIN: u8 = 0x01;
const TUNNEL: u8 = 0x02;

/// One binary sysclient message (big-endian headers).
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `0x01`, a 2-byte admin type, then JSON (not NUL-terminated).
    Admin { kind: u16, json: &'a [u8] },
    /// `0x02`, a 4-byte session id, a 4-byte event type, then data.
    Tunnel {
        session: u32,
        event: u32,
        data: &'a [u8],
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("an empty sysclient message")]
    Empty,
    #[error("sysclient message type {0:#04x} is unknown")]
    UnknownType(u8),
    #[error("the sysclient message is shorter than its header")]
    Short,
}

impl<'a> Frame<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let (&kind, rest) = bytes.split_first().ok_or(FrameError::Empty)?;
        match kind {
            ADMIN => {
                let (head, json) = rest.split_at_checked(2).ok_or(FrameError::Short)?;
                Ok(Frame::Admin {
                    kind: u16::from_be_bytes([head[0], head[1]]),
                    json,
                })
            }
            TUNNEL => {
                let (head, data) = rest.split_at_checked(8).ok_or(FrameError::Short)?;
                let word = |at: usize| {
                    u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]])
                };
                Ok(Frame::Tunnel {
                    session: word(0),
                    event: word(4),
                    data,
                })
            }
            other => Err(FrameError::UnknownType(other)),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Frame::Admin { kind, json } => {
                let mut out = Vec::with_capacity(3 + json.len());
                out.push(ADMIN);
                out.extend_from_slice(&kind.to_be_bytes());
                out.extend_from_slice(json);
                out
            }
            Frame::Tunnel {
                session,
                event,
                data,
            } => {
                let mut out = Vec::with_capacity(9 + data.len());
                out.push(TUNNEL);
                out.extend_from_slice(&session.to_be_bytes());
                out.extend_from_slice(&event.to_be_bytes());
                out.extend_from_slice(data);
                out
            }
        }
    }
}

/// An admin message of `kind` carrying `json`.
pub fn admin_frame(kind: u16, json: &serde_json::Value) -> Vec<u8> {
    Frame::Admin {
        kind,
        json: json.to_string().as_bytes(),
    }
    .to_bytes()
}

/// The Identify a sysclient sends (admin type 0x0000).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Identify {
    /// The hardware id: the MAC, lowercase without separators.
    pub id: String,
    #[serde(default)]
    pub product: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub provisioning_code: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    /// A device that is not innovaphone's own.
    #[serde(default)]
    pub other: bool,
    #[serde(default)]
    pub eth_ifs: Vec<EthIf>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
pub struct Platform {
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
pub struct EthIf {
    #[serde(rename = "if", default)]
    pub name: String,
    #[serde(default)]
    pub ipv4: String,
    #[serde(default)]
    pub ipv6: String,
}

/// What a sysclient tells of itself (from its Identify), kept on its device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SysclientReport {
    pub product: String,
    pub version: String,
    pub platform: String,
    pub interfaces: Vec<EthIf>,
}

impl From<&Identify> for SysclientReport {
    fn from(i: &Identify) -> Self {
        let cap = |s: &str| s.chars().take(200).collect::<String>();
        Self {
            product: cap(&i.product),
            version: cap(&i.version),
            platform: i
                .platform
                .as_ref()
                .map(|p| cap(&p.kind))
                .unwrap_or_default(),
            interfaces: i.eth_ifs.iter().take(16).cloned().collect(),
        }
    }
}

/// A sysclient joining a domain with a provisioning code: the password it is given and
/// what it reported.
#[derive(Clone, Debug, Default)]
pub struct SysclientJoin {
    pub password: SecretString,
    pub report: SysclientReport,
}

/// A domain's innovaphone settings as the API shows them: secrets only as "set".
#[derive(Clone, Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct InnovaphoneSettings {
    /// Whether the App object password (AppWebsocket) is set; without it PBX logins fail.
    pub app_password_set: bool,
    /// Whether an admin password is given to sysclients.
    pub admin_password_set: bool,
    /// The PBX's domain, where it is not this domain's name (ProvisioningPhone `domain`).
    pub pbx_domain: String,
    /// The category of third-party phones whose code names none.
    pub default_category: Option<String>,
}

/// A change of a domain's innovaphone settings; absent fields stay, `null` clears.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InnovaphonePatch {
    #[serde(default, deserialize_with = "crate::model::double_option")]
    #[schema(value_type = Option<String>)]
    pub app_password: Option<Option<SecretString>>,
    #[serde(default, deserialize_with = "crate::model::double_option")]
    #[schema(value_type = Option<String>)]
    pub admin_password: Option<Option<SecretString>>,
    pub pbx_domain: Option<String>,
    #[serde(default, deserialize_with = "crate::model::double_option")]
    pub default_category: Option<Option<String>>,
}

impl InnovaphonePatch {
    pub fn validate(self) -> Result<Self, crate::Invalid> {
        // An empty password removes it.
        let secret = |field: &str, v: Option<Option<SecretString>>| match v {
            Some(Some(p)) if p.is_empty() => Ok(Some(None)),
            Some(Some(p)) => crate::model::secret_text(field, &p).map(|()| Some(Some(p))),
            other => Ok(other),
        };
        Ok(Self {
            app_password: secret("app_password", self.app_password)?,
            admin_password: secret("admin_password", self.admin_password)?,
            pbx_domain: self
                .pbx_domain
                .map(|v| {
                    if v.trim().is_empty() {
                        Ok(String::new())
                    } else {
                        crate::names::domain_name(&v)
                    }
                })
                .transpose()?,
            default_category: self
                .default_category
                .map(|c| c.map(|c| crate::names::category_name(&c)).transpose())
                .transpose()?,
        })
    }
}

/// What Provisor knows of a device that came through innovaphone.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct InnovaphoneDevice {
    /// `pbx-phone` (a third-party phone a PBX handed over) or `sysclient`.
    pub kind: String,
    /// The Hardware ID of the PBX user's device (`pbx-phone`).
    pub hwid: String,
    pub product: String,
    pub version: String,
    pub platform: String,
    #[schema(value_type = Vec<Object>)]
    pub interfaces: Vec<EthIf>,
    pub last_seen: Option<chrono::DateTime<chrono::Utc>>,
}

/// A PBX's `ProvisioningPhone` (§A.4), with the password decrypted, as the store takes it.
#[derive(Clone, Debug)]
pub struct PbxPhone {
    pub mac: crate::Mac,
    pub hwid: String,
    /// The provisioning code, where the message carried a well-formed one.
    pub code: Option<String>,
    pub user: crate::model::NewUser,
    pub account: crate::model::NewSipAccount,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE: &str = "0123456789abcdef";

    #[test]
    fn the_four_official_login_digests() {
        let bare = LoginFields {
            app: "pbxadminapi",
            ..Default::default()
        };
        assert_eq!(
            login_digest(&bare, CHALLENGE, "pwd"),
            "a205299ed2ef2786c311e0be1b14db343f2cadd906a6ae7b564eee34bda5e9a1"
        );
        let empty_info = LoginFields {
            info: Some("{}"),
            ..bare
        };
        assert_eq!(
            login_digest(&empty_info, CHALLENGE, "pwd"),
            "57b23fe824b9222a7ac879597cb509bcdc865a1bfeb057d9d12118cef0c3ba34"
        );
        let cn = LoginFields {
            app: "pbxadminapi",
            info: Some(r#"{"cn":"Test User"}"#),
            ..Default::default()
        };
        assert_eq!(
            login_digest(&cn, CHALLENGE, "pwd"),
            "96db3c3f657230c2b68194becc6d2a77f05de9f79f01fc81e9ca0fb196b10d9d"
        );
        let users = LoginFields {
            app: "innovaphone-users",
            domain: "example.com",
            sip: "administrator",
            guid: "0123456789abcdef0123456789abcdef",
            dn: "Administrator User",
            info: Some(
                r#"{"appobj":"users","apps":[{"name":"users"},{"name":"profile"}],"appurl":"https://1.2.3.4/example.com/usersapp/innovaphone-users","unlicensed":true}"#,
            ),
        };
        assert_eq!(
            login_digest(&users, CHALLENGE, "pwd"),
            "ef1b811ffaa8f9255c39c653d8fb26b4687b2d8c4d9ac91b4821bff6bae3ff44"
        );
    }

    #[test]
    fn session_key_vector() {
        assert_eq!(
            session_key(CHALLENGE, "pwd").expose(),
            "d58c77eae0c1c1f37a9f545e207643c926ad9ea4932016a83a4a01029de37760"
        );
    }

    #[test]
    fn the_rc4_vector_from_myapps() {
        let cipher =
            hex::decode("568665fc2f134d3133325b1f30d66e4e6c9f6f9d165e2f5ce7bbfff1b1de68da")
                .unwrap();
        let plain = rc4(b"innovaphoneAppClient:usr:5bba709c4b68374d:ip411", &cipher);
        assert_eq!(plain, b"9ae4b9193f1362019e19009033400109");
    }

    #[test]
    fn encrypt_decrypt_and_hash_vectors() {
        let key = session_key(CHALLENGE, "pwd");
        let seed = "10046478319880090512700";
        assert_eq!(encrypt(seed, key.expose(), "secret"), "11543a66e509");
        assert_eq!(
            decrypt(seed, key.expose(), "11543a66e509")
                .unwrap()
                .expose(),
            "secret"
        );
        assert_eq!(
            decrypt(seed, key.expose(), "11543A66E509")
                .unwrap()
                .expose(),
            "secret",
            "either hex case"
        );
        assert_eq!(
            hash(seed, key.expose(), "data"),
            "052be74134cff0d291bcd0f67d8bd7b35f99006b89ddf556629fcaa9035887b7"
        );
    }

    #[test]
    fn bad_ciphertexts_are_errors() {
        let key = session_key(CHALLENGE, "pwd");
        assert_eq!(
            decrypt("1", key.expose(), "zz").unwrap_err(),
            CryptError::NotHex
        );
        assert_eq!(
            decrypt("1", key.expose(), "abc").unwrap_err(),
            CryptError::NotHex
        );
        // Bytes that decrypt to an invalid UTF-8 sequence: encrypt 0xff by XOR.
        let stream = rc4(format!("1:{}", key.expose()).as_bytes(), &[0]);
        let bad = hex::encode([stream[0] ^ 0xff]);
        assert_eq!(
            decrypt("1", key.expose(), &bad).unwrap_err(),
            CryptError::NotText
        );
    }

    #[test]
    fn digests_compare_in_either_case_and_not_by_prefix() {
        let d = login_digest(&LoginFields::default(), "1", "p");
        assert!(digest_matches(&d, &d.to_ascii_uppercase()));
        assert!(!digest_matches(&d, &d[..10]));
        assert!(!digest_matches(&d, ""));
    }

    #[test]
    fn challenges_are_sixteen_digits_and_differ() {
        let a = challenge();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(a, challenge());
    }

    #[test]
    fn frames_round_trip_and_bad_ones_are_errors() {
        let admin = Frame::Admin {
            kind: admin::IDENTIFY,
            json: br#"{"id":"009033400000"}"#,
        };
        let bytes = admin.to_bytes();
        assert_eq!(&bytes[..3], &[0x01, 0x00, 0x00]);
        assert_eq!(Frame::parse(&bytes).unwrap(), admin);
        let tunnel = Frame::Tunnel {
            session: 0x01020304,
            event: 1,
            data: b"x",
        };
        let bytes = tunnel.to_bytes();
        assert_eq!(&bytes[..9], &[2, 1, 2, 3, 4, 0, 0, 0, 1]);
        assert_eq!(Frame::parse(&bytes).unwrap(), tunnel);
        assert_eq!(Frame::parse(&[]).unwrap_err(), FrameError::Empty);
        assert_eq!(Frame::parse(&[1, 0]).unwrap_err(), FrameError::Short);
        assert_eq!(Frame::parse(&[2, 0, 0, 0]).unwrap_err(), FrameError::Short);
        assert_eq!(
            Frame::parse(&[9, 0, 0]).unwrap_err(),
            FrameError::UnknownType(9)
        );
    }

    #[test]
    fn identify_reads_the_documented_fields() {
        let id: Identify = serde_json::from_str(
            r#"{"id":"009033400000","product":"IP222","version":"13r2 dvl [13.4250/131286/1300]",
                "platform":{"type":"PHONE"},"provisioningCode":"123123123123",
                "ethIfs":[{"if":"ETH0","ipv4":"10.0.0.5","ipv6":""}],"unknown":1}"#,
        )
        .unwrap();
        assert_eq!(id.product, "IP222");
        assert_eq!(id.platform.unwrap().kind, "PHONE");
        assert_eq!(id.provisioning_code.as_deref(), Some("123123123123"));
        assert_eq!(id.eth_ifs[0].ipv4, "10.0.0.5");
        assert!(!id.other);
    }

    #[test]
    fn sysclient_digest_and_admin_password() {
        let d = sysclient_digest("009033400000", "IP222", "13r2", "1234", "pw");
        assert_eq!(
            d,
            hex::encode(Sha256::digest(b"009033400000:IP222:13r2:1234:pw"))
        );
        let pwd = encrypt("77", "sysclientpw", "admin-secret");
        assert_eq!(
            decrypt("77", "sysclientpw", &pwd).unwrap().expose(),
            "admin-secret"
        );
    }
}
